"""The registry file misbehaving under a serving gateway: truncated, half-written, deleted,
not UTF-8, replaced by rename. Requests never see a partial file: every one is answered
from the last good registry; the bad states show in ``/ready``, the ``reload_failing``
gauge and one ERROR line each; a complete edit is applied."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import yaml

from server.app import create_app
from server.settings import Settings
from tests.fakes.misbehaving_upstream import MisbehavingUpstream
from tests.fakes.registry import REGISTRY_FILE
from tests.fakes.vllm_server import FakeVLLM
from tests.reliability.harness import ANSWER, PROFILE, QUESTION, tracebacks
from tests.server.file_edits import write_bytes
from tests.servers.in_process import sdk_client

pytestmark = pytest.mark.timeout(60)
POLL_S = 0.05


def registry_text(**changes: Any) -> bytes:
    data: dict[str, Any] = yaml.safe_load(REGISTRY_FILE.read_text())
    data.update(changes)
    return yaml.safe_dump(data, sort_keys=False).encode()


@asynccontextmanager
async def watched_gateway(path: Path) -> AsyncIterator[httpx2.AsyncClient]:
    settings = Settings.from_flat({"registry": path, "registry_reload_interval_s": POLL_S})
    app = create_app(
        settings,
        engine_transport=httpx.ASGITransport(app=FakeVLLM(lambda _: ANSWER).app),
        upstream_transport=MisbehavingUpstream().transport(),
    )
    async with sdk_client(app) as (_, http):
        yield http


async def serves_the_profile(http: httpx2.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions", json={"model": PROFILE, "messages": QUESTION}
    )
    assert response.status_code == 200, response.text


async def ready_error(http: httpx2.AsyncClient) -> str | None:
    response = await http.get("/ready")
    error: str | None = response.json()["registry_reload"]["last_error"]
    return error


async def failing(http: httpx2.AsyncClient) -> bool:
    return "router_r1_registry_reload_failing 1.0" in (await http.get("/metrics")).text


async def serve_through(http: httpx2.AsyncClient, polls: int = 10) -> None:
    """Requests while the watcher polls ``polls`` times: every one served."""
    for _ in range(polls):
        await serves_the_profile(http)
        await asyncio.sleep(POLL_S)


async def until_reported(http: httpx2.AsyncClient, words: str) -> str:
    async with asyncio.timeout(10):
        while True:
            error = await ready_error(http)
            if error is not None and words in error:
                return error
            await serves_the_profile(http)
            await asyncio.sleep(POLL_S)


async def until_cleared(http: httpx2.AsyncClient) -> None:
    async with asyncio.timeout(10):
        while await ready_error(http) is not None:  # noqa: ASYNC110 (the watcher's schedule)
            await asyncio.sleep(POLL_S)


@pytest.mark.parametrize(
    ("damage", "reported"),
    [
        ("truncate", "defines no router profile and no model"),
        ("half-written", "defines no router profile ("),
        ("delete", "missing or unreadable"),
        ("not-utf8", "not UTF-8 text"),
    ],
)
async def test_a_damaged_file_keeps_the_last_good_registry(
    tmp_path: Path, damage: str, reported: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "registry.yaml"
    good = registry_text()
    write_bytes(path, good)
    async with watched_gateway(path) as http:
        await serves_the_profile(http)
        if damage == "truncate":
            write_bytes(path, b"")
        elif damage == "half-written":
            data = yaml.safe_load(good)
            del data["profiles"]
            write_bytes(path, yaml.safe_dump(data).encode())
        elif damage == "delete":
            path.unlink()
        else:
            write_bytes(path, good.replace(b"Qwen", b"Qw\xe9n", 1))
        error = await until_reported(http, reported)
        await serve_through(http)
        assert await failing(http)
        ready = await http.get("/ready")
        assert ready.status_code == 200  # serving the last good registry: still ready
        assert await ready_error(http) == error
        models = (await http.get("/v1/models")).json()["data"]
        assert PROFILE in [m["id"] for m in models]

        write_bytes(path, good)  # repaired
        await until_cleared(http)
        assert not await failing(http)
        await serves_the_profile(http)
    reload_errors = [r for r in caplog.records if r.name == "router_r1.reload"]
    assert len(reload_errors) == 1  # one ERROR line, however many polls saw it
    assert reload_errors[0].levelno == logging.ERROR
    assert tracebacks(caplog.records, expected_errors=["router_r1.reload"]) == []


async def test_a_file_replaced_by_rename_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    write_bytes(path, registry_text())
    async with watched_gateway(path) as http:
        data = yaml.safe_load(registry_text())
        data["profiles"][0]["name"] = "router-r1-renamed"
        replacement = tmp_path / "registry.yaml.tmp"
        replacement.write_bytes(yaml.safe_dump(data, sort_keys=False).encode())
        os.replace(replacement, path)
        async with asyncio.timeout(10):
            while True:
                models = (await http.get("/v1/models")).json()["data"]
                if "router-r1-renamed" in [m["id"] for m in models]:
                    break
                await asyncio.sleep(POLL_S)
        response = await http.post(
            "/v1/chat/completions", json={"model": "router-r1-renamed", "messages": QUESTION}
        )
        assert response.status_code == 200
        assert await ready_error(http) is None


async def test_a_slow_writer_is_never_caught_half_way(tmp_path: Path) -> None:
    """A writer that truncates, then writes the file in pieces over several polls: the
    profile keeps answering throughout, and the finished file is applied."""
    path = tmp_path / "registry.yaml"
    write_bytes(path, registry_text())
    final = registry_text(allow_empty=False).replace(b"router-r1", b"router-r1-v2")
    async with watched_gateway(path) as http:
        with path.open("wb") as handle:  # one in-place write, in four pieces
            step = len(final) // 4 + 1
            for start in range(0, len(final), step):
                handle.write(final[start : start + step])
                handle.flush()
                await asyncio.sleep(POLL_S * 0.6)  # less than a poll between pieces
                await serves_the_profile(http)
        async with asyncio.timeout(10):
            while True:
                response = await http.post(
                    "/v1/chat/completions", json={"model": "router-r1-v2", "messages": QUESTION}
                )
                if response.status_code == 200:
                    break
                assert response.status_code == 404
                await asyncio.sleep(POLL_S)
        # the old profile is gone now, as the finished file says
        old = await http.post("/v1/chat/completions", json={"model": PROFILE, "messages": QUESTION})
        assert old.status_code == 404
