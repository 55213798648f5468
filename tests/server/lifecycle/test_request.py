"""RequestLifecycle's passthrough trace: a valid trace, built once when the response carried it
(a measured shortcut: bench/bench_proxy.py), anew when something changed after."""

from __future__ import annotations

from router_model.episode.trace import RouterTrace
from server.lifecycle.outcome import RequestOutcome
from server.lifecycle.request import RequestLifecycle
from tests.fakes.registry import default_registry


class Sink:
    def __init__(self) -> None:
        self.outcomes: list[RequestOutcome] = []

    async def record(self, outcome: RequestOutcome, exc: BaseException | None) -> None:
        self.outcomes.append(outcome)


def _served(sink: Sink) -> RequestLifecycle:
    first, second = default_registry().models[:2]
    lifecycle = RequestLifecycle("req-1", sink)
    failed = lifecycle.serving_passthrough(first)
    failed.status, failed.error, failed.attempts = "unavailable", "connect refused", 3
    call = lifecycle.passthrough_fallback(second)
    call.status, call.prompt_tokens, call.completion_tokens = "ok", 12, 5
    call.cost_usd, call.attempts, call.deployment = 0.0012, 1, "primary"
    return lifecycle


async def test_the_passthrough_trace_is_a_valid_trace() -> None:
    sink = Sink()
    lifecycle = _served(sink)
    trace = lifecycle.trace_so_far()
    assert RouterTrace.model_validate(trace.model_dump()) == trace
    assert RouterTrace.model_validate_json(trace.model_dump_json()) == trace
    assert [s.model for s in trace.steps] == [m.name for m in default_registry().models[:2]]
    assert trace.totals.cost_usd == 0.0012
    assert trace.outcome == "completed"


async def test_a_successful_close_stores_the_trace_the_response_carried() -> None:
    sink = Sink()
    lifecycle = _served(sink)
    carried = lifecycle.trace_so_far()
    await lifecycle.close()
    (outcome,) = sink.outcomes
    assert outcome.trace is carried


async def test_a_failure_after_the_response_builds_the_closing_trace_anew() -> None:
    sink = Sink()
    lifecycle = _served(sink)
    carried = lifecycle.trace_so_far()
    await lifecycle.close(TimeoutError("stream stalled"))
    (outcome,) = sink.outcomes
    assert outcome.trace is not None
    assert outcome.trace is not carried
    assert outcome.trace.outcome == "error"
    assert RouterTrace.model_validate(outcome.trace.model_dump()) == outcome.trace


async def test_a_call_added_after_the_response_is_in_the_closing_trace() -> None:
    sink = Sink()
    lifecycle = _served(sink)
    lifecycle.trace_so_far()
    lifecycle.passthrough_fallback(default_registry().models[2])
    await lifecycle.close()
    (outcome,) = sink.outcomes
    assert outcome.trace is not None
    assert len(outcome.trace.steps) == 3
