"""The policy engine misbehaving: down, killed mid-episode, slow, malformed, over a real socket.

Each is its documented status (``server.errors.classify``): down 503
``policy_engine_unavailable``, killed mid-stream 503 (or, once a stream has started, one
error event), slow past the engine's read timeout 504 ``policy_engine_timeout``, past the
episode's deadline a 200 with what it has (``deadline_exceeded``), malformed 502
``policy_engine_error``. Bounded; no traceback; and a failure midway charges everything the
episode spent: the paid upstream calls and every policy turn (issue 10, item 5)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from tests.fakes.faulty_engine import Cut, EngineFaults, Malformed, Pass, Slow
from tests.fakes.misbehaving_upstream import MisbehavingUpstream, Reply
from tests.fakes.vllm_server import FakeVLLM
from tests.reliability.harness import (
    ANSWER,
    POLICY_PRICE,
    PROFILE,
    QWEN_PRICE,
    ROUTE,
    UsageTap,
    assert_clean_log,
    faulty_gateway,
    upstream_spend,
)
from tests.reliability.test_episode_faults import episode, streamed
from tests.reliability.test_passthrough_faults import post, stream_error
from tests.servers.ports import free_port

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def envelope(response: Any, stream: bool) -> dict[str, Any]:
    error: dict[str, Any] = stream_error(response.text) if stream else response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_an_engine_that_is_down_is_503(
    stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/v1"  # connection refused
    async with faulty_gateway(tcp_engine=nowhere) as h:
        started = time.monotonic()
        response = await post(h, episode(stream))
        assert time.monotonic() - started < 5
        assert response.status_code == 503  # a stream fails before its first byte
        error = response.json()["error"]
        assert error["code"] == "policy_engine_unavailable"
        assert error["type"] == "service_unavailable"
        assert h.statuses() == {f"{PROFILE}/router/503": 1}
        assert h.metric("router_r1_request_errors_total", profile=PROFILE, kind="policy_engine")
        assert await h.spend() == 0
        assert (await h.http.get("/ready")).status_code == 503
    assert_clean_log(caplog)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_an_engine_killed_after_a_paid_route_charges_everything_spent(
    stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Turn 1 routes (the upstream is paid), turn 2's stream is cut after one event."""
    engine = FakeVLLM([ROUTE, ANSWER])
    tap = UsageTap(engine.app)
    faults = EngineFaults(tap).script("/v1/completions", Pass(), Cut(after_events=1))
    upstream = MisbehavingUpstream(Reply(prompt_tokens=30, completion_tokens=9))
    async with faulty_gateway(upstream, faults, tcp_engine=True) as h:
        response = await post(h, episode(stream))
        if stream:
            assert response.status_code == 200
            reasoning, _, _ = streamed(response.text.rsplit('data: {"error"', 1)[0])
            assert "Tolstoy" in reasoning  # the observation had been streamed
        else:
            assert response.status_code == 503
        error = envelope(response, stream)
        assert error["code"] == "policy_engine_unavailable"
        assert h.statuses() == {f"{PROFILE}/router/503": 1}
        assert len(engine.completions) == 2
        assert upstream_spend(upstream) == pytest.approx(39 * QWEN_PRICE)
        # turn 1 as the engine reported it; turn 2 was cut off: its prompt (sent) and the one
        # chunk that arrived are charged
        cut_prompt = len(engine.completions[1].prompt_ids)
        policy_tokens = tap.reported[0]["prompt_tokens"] + tap.reported[0]["completion_tokens"]
        expected = upstream_spend(upstream) + (policy_tokens + cut_prompt + 1) * POLICY_PRICE
        assert len(tap.reported) == 1
        assert await h.spend() == pytest.approx(expected)
    assert_clean_log(caplog)


async def test_an_engine_slower_than_its_read_timeout_is_504(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FakeVLLM([ANSWER, ANSWER])
    faults = EngineFaults(engine.app).script("/v1/completions", Slow(3.0), Slow(3.0))
    async with faulty_gateway(
        engine=faults, tcp_engine=True, policy_endpoint={"read_timeout_s": 0.5}
    ) as h:
        for stream in (False, True):
            started = time.monotonic()
            response = await post(h, episode(stream))
            assert time.monotonic() - started < 0.5 + 2.0
            assert response.status_code == 504
            assert response.json()["error"]["code"] == "policy_engine_timeout"
        assert h.statuses() == {f"{PROFILE}/router/504": 2}
    assert_clean_log(caplog)


async def test_an_episode_past_its_deadline_answers_with_what_it_has(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FakeVLLM([ROUTE, ANSWER])
    faults = EngineFaults(engine.app).script("/v1/completions", Slow(0.0), Slow(5.0))
    async with faulty_gateway(engine=faults, tcp_engine=True, limits={"deadline_s": 1.0}) as h:
        started = time.monotonic()
        response = await post(h, episode(False))
        assert time.monotonic() - started < 1.0 + 2.0
        assert response.status_code == 200
        body = response.json()
        assert body["router"]["outcome"] == "deadline_exceeded"
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["choices"][0]["message"]["content"] == ""
        assert h.statuses() == {f"{PROFILE}/router/200": 1}
    assert_clean_log(caplog)


MALFORMED_EVENT = Malformed(b"data: {this is not json\n\n", "text/event-stream")


@pytest.mark.parametrize(
    ("path", "fault"),
    [
        ("/tokenize", Malformed()),
        ("/v1/completions", MALFORMED_EVENT),
        ("/v1/completions", Malformed(content_type="text/html")),
    ],
    ids=["tokenize", "completion-event", "completion-html"],
)
async def test_a_malformed_engine_reply_is_502(
    path: str, fault: Malformed, caplog: pytest.LogCaptureFixture
) -> None:
    engine = FakeVLLM([ANSWER, ANSWER])
    faults = EngineFaults(engine.app).script(path, fault, fault)
    async with faulty_gateway(engine=faults, tcp_engine=True) as h:
        for stream in (False, True):
            response = await post(h, episode(stream))
            if response.status_code == 200:  # a stream that failed after its first byte
                error = envelope(response, True)
                status = 502
            else:
                error, status = response.json()["error"], response.status_code
            assert status == 502
            assert error["code"] == "policy_engine_error"
            assert error["type"] == "upstream_error"
        assert h.statuses() == {f"{PROFILE}/router/502": 2}
    assert_clean_log(caplog)
