"""A real Arize Phoenix (``phoenix serve`` from the venv of ``scripts/setup_phoenix.sh``) on
free loopback ports, its SQLite database in a temporary directory, its own telemetry off;
spans are read back through its REST API (``GET /v1/projects/{project}/spans``).

Phoenix takes OTLP over HTTP on its UI/API port (``/v1/traces``) and over gRPC on
``PHOENIX_GRPC_PORT`` (which it binds on every interface: nothing else can be chosen).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.servers.ports import free_port, wait_until

START_TIMEOUT_S = 180.0  # a first start on a loaded 2-core machine compiles a lot of Python
DEFAULT_PROJECT = "default"


def phoenix_venv() -> Path:
    cache = Path(os.environ.get("ROUTER_R1_CACHE", Path.home() / ".cache" / "router-r1"))
    return Path(os.environ.get("ROUTER_R1_PHOENIX_VENV", cache / "phoenix-venv"))


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


class PhoenixServer:
    def __init__(self, workdir: Path) -> None:
        binary = phoenix_venv() / "bin" / "phoenix"
        if not binary.exists():
            raise AssertionError(f"{binary} is missing: run scripts/setup_phoenix.sh")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.grpc_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "phoenix.log"
        self.started_in_s = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def otlp_http_endpoint(self) -> str:
        """For ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporter appends ``/v1/traces``)."""
        return self.url

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def start(self) -> PhoenixServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        environ = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OTEL_", "PHOENIX_"))
        }
        environ.update(
            {
                "PHOENIX_HOST": "127.0.0.1",
                "PHOENIX_PORT": str(self.port),
                "PHOENIX_GRPC_PORT": str(self.grpc_port),
                "PHOENIX_WORKING_DIR": str(self.workdir / "data"),
                "PHOENIX_TELEMETRY_ENABLED": "false",
            }
        )
        started = time.monotonic()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "serve"], stdout=log, stderr=subprocess.STDOUT, env=environ
            )
        process = self.process
        try:
            wait_until(
                lambda: process.poll() is not None or _ready(self.port),
                START_TIMEOUT_S,
                f"phoenix on port {self.port}",
            )
        except AssertionError:
            self.stop()
            raise AssertionError(f"phoenix did not start: {self.log.read_text()[-3000:]}") from None
        if process.poll() is not None:
            raise AssertionError(f"phoenix exited at start: {self.log.read_text()[-3000:]}")
        self.started_in_s = time.monotonic() - started
        return self

    def spans(self, trace_id: str, project: str = DEFAULT_PROJECT) -> list[dict[str, Any]]:
        """Every span of the trace (32 lowercase hex digits) that Phoenix has stored."""
        response = httpx.get(
            f"{self.url}/v1/projects/{project}/spans",
            params={"trace_id": trace_id, "limit": 1000},
            timeout=10,
        )
        if response.status_code == 404:  # the project appears with its first span
            return []
        response.raise_for_status()
        spans: list[dict[str, Any]] = response.json()["data"]
        return spans

    def wait_for_spans(
        self, trace_id: str, count: int, timeout_s: float = 30.0
    ) -> list[dict[str, Any]]:
        """The trace's spans once ``count`` are stored (Phoenix ingests asynchronously)."""
        found: list[dict[str, Any]] = []

        def arrived() -> bool:
            nonlocal found
            found = self.spans(trace_id)
            return len(found) >= count

        wait_until(arrived, timeout_s, f"{count} spans of trace {trace_id} in phoenix")
        return found

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
