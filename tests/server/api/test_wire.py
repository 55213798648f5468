"""server/api/chat_completions/wire.py: the passthrough body embeds the trace's own JSON
(a measured shortcut); it must be exactly the body with ``router`` added as a key."""

from __future__ import annotations

import json

from router_model.episode.trace import RouterTrace
from server.api.chat_completions import wire
from server.lifecycle.outcome import RequestOutcome
from server.lifecycle.request import RequestLifecycle
from tests.fakes.registry import default_registry


class _Sink:
    async def record(self, outcome: RequestOutcome, exc: BaseException | None) -> None:
        pass


def _trace() -> RouterTrace:
    lifecycle = RequestLifecycle("req-é", _Sink())
    call = lifecycle.serving_passthrough(default_registry().models[0])
    call.status, call.prompt_tokens, call.completion_tokens, call.cost_usd = "ok", 3, 4, 1e-7
    return lifecycle.trace_so_far()


def test_the_body_is_the_upstreams_with_cost_and_router_added() -> None:
    trace = _trace()
    body = {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris — ça"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        "router": "an upstream's own field",
    }
    encoded = wire.passthrough_completion(dict(body), trace, 1e-7)
    decoded = json.loads(encoded)
    assert decoded == {
        **body,
        "usage": {**body["usage"], "cost": 1e-7},
        "router": trace.model_dump(mode="json"),
    }
    assert list(decoded)[-1] == "router"


def test_an_empty_body_still_carries_the_router_object() -> None:
    trace = _trace()
    assert json.loads(wire.passthrough_completion({}, trace, 0.0)) == {
        "router": trace.model_dump(mode="json")
    }
