"""What ``router-r1 serve`` writes to its log, and what reaches uvicorn.

The gateway runs as a subprocess (as an operator runs it) against a fake engine and a fake
upstream served by this test: every line has a time, a level, a logger and a request id;
startup says which registry was loaded and how many keys; one ``router_r1.access`` line per
request carries status, latency, profile/model, routes and cost; warnings, errors and
uvicorn's own lines look the same; ``ROUTER_R1_LOG_FORMAT=json`` makes every line a JSON
object. The keep-alive and graceful-shutdown settings reach uvicorn; a bad setting exits 2
with one line naming the variable."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from router_r1.cli import app as cli_app
from server.auth import hash_key
from tests.fakes.misbehaving_upstream import MisbehavingUpstream
from tests.fakes.registry import REGISTRY_FILE
from tests.fakes.vllm_server import FakeVLLM
from tests.servers.ports import free_port, port_open, wait_until
from tests.servers.uvicorn_server import serving

CLI = Path(sys.executable).parent / "router-r1"
KEY = "rr1-logging-key"
QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace?"}]
ROUTE = "<think>Ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote war and peace </search>"
ANSWER = "<think>Done.</think>\n<answer> Leo Tolstoy </answer>"
TEXT_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"
    r" (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)"
    r" (?P<logger>[\w.]+) \[(?P<request_id>[^\]]+)\] (?P<message>.*)$"
)


def policy(prompt: str) -> str:
    return ANSWER if prompt.rstrip().endswith("</information>") else ROUTE


@dataclass
class Served:
    port: int
    log: Path
    registry: Path
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").splitlines()


@contextmanager
def gateway_process(tmp_path: Path, env: dict[str, str]) -> Iterator[Served]:
    port = free_port()
    log = tmp_path / "serve.log"
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY_FILE.read_text())
    environ = {
        **os.environ,
        "ROUTER_R1_REGISTRY": str(registry),
        "ROUTER_R1_REGISTRY_RELOAD_INTERVAL_S": "0.2",
        "ROUTER_R1_API_KEYS": json.dumps([{"id": "ops", "sha256": hash_key(KEY)}]),
        **env,
    }
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port)],
            env=environ,
            stdout=stderr,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: process.poll() is not None or port_open(port), 60, "the gateway")
        assert process.poll() is None, log.read_text()
        yield Served(port, log, registry, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@asynccontextmanager
async def fakes() -> AsyncIterator[dict[str, str]]:
    """A fake engine and a fake upstream over TCP; the env pointing the registry at them."""
    async with serving(FakeVLLM(policy).app) as engine_port, MisbehavingUpstream().served() as up:
        yield {
            "ROUTER_R1_POLICY_URL": f"http://127.0.0.1:{engine_port}/v1",
            "NIM_BASE_URL": up,
        }


async def chat(served: Served, model: str, request_id: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=served.base_url, timeout=20) as http:
        return await http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": QUESTION},
            headers={"authorization": f"Bearer {KEY}", "x-request-id": request_id},
        )


async def wait_for_line(served: Served, needle: str, timeout_s: float = 10.0) -> str:
    async with asyncio.timeout(timeout_s):
        while True:
            found = [line for line in served.lines() if needle in line]
            if found:
                return found[-1]
            await asyncio.sleep(0.05)


def fields_of(message: str) -> dict[str, str]:
    """``chat completion status=200 latency_ms=3.1 ...`` → its key=value fields."""
    return dict(re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", message))


@pytest.mark.slow
async def test_text_logs_of_a_serving_gateway(tmp_path: Path) -> None:
    async with fakes() as env:
        with gateway_process(tmp_path, {**env, "ROUTER_R1_HTTP_KEEPALIVE_TIMEOUT_S": "1"}) as gw:
            await wait_for_line(gw, "Application startup complete")
            response = await chat(gw, "router-r1", "req-episode-1")
            assert response.status_code == 200, response.text
            assert (await chat(gw, "No-Such-Model", "req-missing-1")).status_code == 404
            access = await wait_for_line(gw, "[req-missing-1]")
            episode = await wait_for_line(gw, "[req-episode-1]")
            gw.registry.write_text("")  # a truncated registry: refused, one ERROR line
            refused = await wait_for_line(gw, "registry reload failed")
            closed_after_s = await idle_connection_lifetime(gw.port)
        lines = gw.lines()

    parsed = [TEXT_LINE.match(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed, strict=True) if not m]
    by_logger = {m.group("logger") for m in parsed if m}
    assert {"router_r1", "router_r1.access", "router_r1.reload", "uvicorn.error"} <= by_logger
    startup = [m.group("message") for m in parsed if m and m.group("logger") == "router_r1"]
    assert f"registry {gw.registry} loaded" in startup
    assert "1 API keys configured" in startup

    match = TEXT_LINE.match(episode)
    assert match is not None
    assert (match.group("level"), match.group("logger")) == ("INFO", "router_r1.access")
    fields = fields_of(match.group("message"))
    assert fields["status"] == "200"
    assert (fields["profile"], fields["model"], fields["routes"]) == ("router-r1", "router", "1")
    assert float(fields["latency_ms"]) > 0
    assert float(fields["cost_usd"]) > 0
    assert fields["key"] == "ops"
    missing = fields_of(access)
    assert missing["status"] == "404"
    assert missing["error"] == "model_not_found"

    match = TEXT_LINE.match(refused)
    assert match is not None
    assert (match.group("level"), match.group("logger")) == ("ERROR", "router_r1.reload")
    assert "defines no router profile and no model" in refused
    assert not any(line.startswith("Traceback") for line in lines)
    assert closed_after_s < 3.0  # ROUTER_R1_HTTP_KEEPALIVE_TIMEOUT_S=1 reached uvicorn (5 s)


async def idle_connection_lifetime(port: int) -> float:
    """Seconds until the server closes an idle keep-alive connection (10 at most)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n")
        await writer.drain()
        loop = asyncio.get_running_loop()
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"200" in head.split(b"\r\n")[0]
        started = loop.time()
        async with asyncio.timeout(10):
            while await reader.read(65536):  # the body, then EOF when the server closes
                pass
        return loop.time() - started
    finally:
        writer.close()


@pytest.mark.slow
async def test_json_logs_of_a_serving_gateway(tmp_path: Path) -> None:
    async with fakes() as env:
        json_open_mode = {**env, "ROUTER_R1_LOG_FORMAT": "json", "ROUTER_R1_API_KEYS": ""}
        with gateway_process(tmp_path, json_open_mode) as gw:
            await wait_for_line(gw, "Application startup complete")
            assert (await chat(gw, "router-r1", "req-json-1")).status_code == 200
            await wait_for_line(gw, "req-json-1")
        lines = gw.lines()
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert {"time", "level", "logger", "request_id", "message"} <= set(entry)
    access = [e for e in entries if e["logger"] == "router_r1.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "req-json-1"
    assert line["status"] == 200
    assert (line["profile"], line["model"], line["routes"]) == ("router-r1", "router", 1)
    assert line["cost_usd"] > 0
    assert line["latency_ms"] > 0
    assert line["key"] == "anonymous"
    assert any(e["logger"] == "uvicorn.error" for e in entries)
    (warning,) = [e for e in entries if e["level"] == "WARNING"]
    assert warning["logger"] == "router_r1"
    assert warning["message"].startswith("no API keys configured")
    assert warning["request_id"] == "-"


# ---------------------------------------------------------------------------- in-process


def test_the_http_settings_reach_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("ROUTER_R1_REGISTRY", str(REGISTRY_FILE))
    monkeypatch.setenv("ROUTER_R1_HTTP_KEEPALIVE_TIMEOUT_S", "90")
    monkeypatch.setenv("ROUTER_R1_HTTP_GRACEFUL_SHUTDOWN_S", "12")
    monkeypatch.setenv("ROUTER_R1_LOG_FORMAT", "json")
    result = CliRunner().invoke(cli_app, ["serve", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert seen["timeout_keep_alive"] == 90
    assert seen["timeout_graceful_shutdown"] == 12
    assert seen["access_log"] is False  # one router_r1.access line instead
    formatters = seen["log_config"]["formatters"]
    assert seen["log_config"]["handlers"]["stderr"]["formatter"] == "json"
    assert set(formatters) == {"text", "json"}


def test_the_keep_alive_default_outlasts_load_balancers(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("ROUTER_R1_REGISTRY", str(REGISTRY_FILE))
    monkeypatch.delenv("ROUTER_R1_HTTP_KEEPALIVE_TIMEOUT_S", raising=False)
    result = CliRunner().invoke(cli_app, ["serve", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert seen["timeout_keep_alive"] > 60


def test_a_bad_setting_exits_2_with_one_line_naming_it() -> None:
    env = {**os.environ, "ROUTER_R1_UPSTREAM_MAX_RETRIES": "abc"}
    result = subprocess.run(
        [str(CLI), "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ROUTER_R1_UPSTREAM_MAX_RETRIES: ")
    assert "'abc'" in lines[0]


def test_an_empty_registry_stops_serve_with_one_line(tmp_path: Path) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_text("")
    env = {**os.environ, "ROUTER_R1_REGISTRY": str(registry)}
    result = subprocess.run(
        [str(CLI), "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {registry}: defines no router profile and no model")


def test_an_otel_value_it_cannot_honour_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    monkeypatch.setenv("ROUTER_R1_REGISTRY", str(REGISTRY_FILE))
    monkeypatch.setenv("OTEL_SERVICE_NAME", "router-r1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    result = CliRunner().invoke(cli_app, ["serve", "--port", "0"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: OTLP protocol 'http/json' is not supported: use http/protobuf or grpc"
    ]
