"""``model=<registry model>``: forward to its upstream, adding only usage and cost accounting.

Non-streamed replies get ``usage.cost`` (USD) added to the upstream body. Streams are relayed
event by event, byte for byte; the upstream's ``[DONE]`` is held back until one last chunk of
ours has carried ``usage`` (with ``cost``) and the ``router`` totals, so a streamed request is
never accounted at $0 (usage is estimated when the upstream reports none).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response

from router_model.registry import ModelSpec
from server.api.chat_completions.event_stream import EventStreamResponse
from server.errors import bad_request, sse_error_event
from server.operations.accounting import RequestAccount
from server.upstream import UpstreamError, UpstreamPool, UpstreamStream, is_done

_DONE = b"data: [DONE]\n\n"


def _check_body(body: dict[str, Any]) -> None:
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise bad_request("messages: a non-empty list of messages is required", param="messages")
    if not isinstance(body.get("stream", False), bool):
        raise bad_request("stream: must be a boolean", param="stream")


def _router_totals(
    model: ModelSpec, cost: float, latency_s: float, estimated: bool
) -> dict[str, Any]:
    return {
        "mode": "passthrough",
        "routes": 0,
        "models": [model.name],
        "cost_usd": cost,
        "latency_ms": round(latency_s * 1000, 3),
        "usage_estimated": estimated,
    }


def _accounting_headers(model: ModelSpec, cost: float, latency_s: float) -> dict[str, str]:
    return {
        "x-router-cost-usd": f"{cost:.8f}",
        "x-router-routes": "0",
        "x-router-models": model.name,
        "x-router-latency-ms": f"{latency_s * 1000:.1f}",
    }


async def passthrough(
    pool: UpstreamPool,
    model: ModelSpec,
    body: dict[str, Any],
    account: RequestAccount | None = None,
) -> Response:
    _check_body(body)
    started = time.perf_counter()
    if body.get("stream"):
        stream = await pool.chat_stream(model, body)
        chunks = _relay(stream, model, started)
        if account is not None:
            chunks = account.stream(chunks, upstream=stream)

        async def finished(error: BaseException | None) -> None:
            # both are closed by the body's end already, unless the body never started
            await stream.aclose()
            if account is not None:
                await account.close(error)

        return EventStreamResponse(
            chunks, headers={"x-router-models": model.name}, finished=finished
        )
    result = await pool.chat(model, body)
    if account is not None:
        account.passthrough_result(result)
    latency = time.perf_counter() - started
    payload = result.body
    usage = payload.get("usage")
    if isinstance(usage, dict):
        usage["cost"] = result.cost_usd
        content = orjson.dumps(payload)
    else:
        content = result.content
    headers = {
        k: v for k, v in result.headers.items() if k not in ("content-type", "content-length")
    }
    headers.update(_accounting_headers(model, result.cost_usd, latency))
    return Response(
        content, status_code=result.status_code, media_type="application/json", headers=headers
    )


async def _relay(stream: UpstreamStream, model: ModelSpec, started: float) -> AsyncIterator[bytes]:
    last_id = "chatcmpl-passthrough"
    async with stream:
        try:
            async for event in stream:
                if is_done(event):
                    continue
                yield event
        except UpstreamError as exc:
            yield sse_error_event(exc)
            yield _DONE
            return
    usage = stream.usage
    prompt = usage.prompt_tokens if usage else 0
    completion = usage.completion_tokens if usage else 0
    final: dict[str, Any] = {
        "id": last_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model.name,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cost": stream.cost_usd,
        },
        "router": _router_totals(
            model, stream.cost_usd, time.perf_counter() - started, stream.usage_estimated
        ),
    }
    yield b"data: " + orjson.dumps(final) + b"\n\n"
    yield _DONE
