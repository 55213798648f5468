"""A real Prometheus (the Debian ``prometheus`` package's binary) on a free loopback port,
scraping given targets, with its TSDB in a temporary directory."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.servers.ports import free_port, wait_until

START_TIMEOUT_S = 30.0


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


class PrometheusServer:
    def __init__(self, workdir: Path, targets: list[str], scrape_interval: str = "1s") -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise AssertionError("prometheus is not installed: run scripts/bootstrap.sh")
        self.binary = binary
        self.workdir = workdir
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": [
                {"job_name": "router-r1-proxy", "static_configs": [{"targets": self.targets}]}
            ],
        }
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self.process
        wait_until(
            lambda: process.poll() is not None or _ready(self.port),
            START_TIMEOUT_S,
            f"prometheus on port {self.port}",
        )
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited at start: {self.log.read_text()[-2000:]}")
        return self

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (raises on a PromQL error)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"PromQL {expr!r} failed: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout_s: float = 60.0) -> None:
        """Until ``expr`` has a finite value (bounded: a loaded machine scrapes late)."""
        deadline = time.monotonic() + timeout_s
        while not finite_values(self.query(expr)):
            assert time.monotonic() < deadline, f"prometheus never saw {expr}"
            time.sleep(0.5)

    def target_health(self) -> list[str]:
        response = httpx.get(f"{self.url}/api/v1/targets", timeout=10)
        return [t["health"] for t in response.json()["data"]["activeTargets"]]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    values = [float(series["value"][1]) for series in result]
    return [v for v in values if math.isfinite(v)]
