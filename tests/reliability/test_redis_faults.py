"""A real Redis killed, frozen (SIGSTOP) and restarted while requests flow.

Requests keep being served, each within a bound (every Redis operation is bounded by
``ROUTER_R1_REDIS_TIMEOUT_S``, then skipped for ``RETRY_INTERVAL_S``); limits fail open (or,
with ``ROUTER_R1_LIMITS_FAIL_OPEN=false``, refuse with 503 ``limits_unavailable``); the
store errors are counted; ``/ready`` shows the store down but stays ready; nothing
half-written is served afterwards: spend and the cache work again once Redis is back."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from tests.fakes.misbehaving_upstream import MisbehavingUpstream
from tests.fakes.vllm_server import FakeVLLM
from tests.reliability.harness import (
    ANSWER,
    PROFILE,
    QUESTION,
    ROUTE,
    Harness,
    assert_clean_log,
    faulty_gateway,
)
from tests.servers.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
REQUEST_BOUND_S = 3.0  # one request while Redis is away: a few bounded store waits at most


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def routing_engine() -> FakeVLLM:
    return FakeVLLM(lambda prompt: ANSWER if prompt.rstrip().endswith("</information>") else ROUTE)


async def episode(h: Harness, **extra: Any) -> tuple[int, float]:
    """(status, seconds) of one routed episode."""
    started = time.monotonic()
    async with asyncio.timeout(REQUEST_BOUND_S * 3):
        response = await h.http.post(
            "/v1/chat/completions", json={"model": PROFILE, "messages": QUESTION, **extra}
        )
    return response.status_code, time.monotonic() - started


def store_errors(h: Harness) -> float:
    return sum(
        sample.value
        for family in h.state.metrics.registry.collect()
        if family.name == "router_r1_store_errors"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


async def test_killed_frozen_and_restarted_while_serving(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = MisbehavingUpstream()
    async with faulty_gateway(
        upstream,
        routing_engine(),
        redis_url=redis_server.url,
        redis_timeout_s=0.25,
        redis_retry_interval_s=0.5,
    ) as h:
        assert (await episode(h))[0] == 200
        assert (await episode(h))[0] == 200  # the second route call is a cache hit
        assert len(upstream.received) == 1
        spent = await h.spend()
        assert spent > 0

        redis_server.kill()
        for _ in range(4):
            status, seconds = await episode(h)
            assert status == 200  # fail open: served without limits or cache
            assert seconds < REQUEST_BOUND_S
        assert store_errors(h) > 0
        ready = await h.http.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["store"]["up"] is False
        usage = await h.http.get("/v1/router/usage")
        assert usage.status_code == 503
        assert usage.json()["error"]["code"] == "store_unavailable"

        redis_server.start()  # the same port, empty (no persistence)
        await asyncio.sleep(0.6)  # past the retry interval
        assert (await episode(h))[0] == 200
        after = await h.spend()  # only what was spent since Redis came back
        assert 0 < after <= spent

        redis_server.pause()
        try:
            for _ in range(3):
                status, seconds = await episode(h)
                assert status == 200
                assert seconds < REQUEST_BOUND_S
        finally:
            redis_server.resume()
        await asyncio.sleep(0.6)
        assert (await episode(h))[0] == 200
        assert await h.spend() > after
        assert (await h.http.get("/ready")).json()["store"]["up"] is True
        assert h.in_flight == 0
        assert set(h.statuses()) == {f"{PROFILE}/router/200"}
    assert_clean_log(caplog, expected_errors=["router_r1.store"])


async def test_fail_closed_refuses_while_redis_is_away(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with faulty_gateway(
        MisbehavingUpstream(),
        routing_engine(),
        redis_url=redis_server.url,
        redis_timeout_s=0.25,
        redis_retry_interval_s=0.5,
        limits_fail_open=False,
    ) as h:
        assert (await episode(h))[0] == 200
        redis_server.kill()
        status, seconds = await episode(h)
        assert status == 503
        assert seconds < REQUEST_BOUND_S
        assert h.metric("router_r1_rejections_total", reason="store_unavailable") == 1
        redis_server.start()
        await asyncio.sleep(0.6)
        assert (await episode(h))[0] == 200
        # refused before the body was read: no profile known yet
        assert h.statuses() == {f"{PROFILE}/router/200": 2, "none/none/503": 1}
    assert_clean_log(caplog, expected_errors=["router_r1.store"])
