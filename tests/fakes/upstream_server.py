"""A fake OpenAI-compatible upstream serving every registry model, as an in-process ASGI app.

Each upstream model id gets a scripted behaviour (:class:`UpstreamScript`): a reply text, an
HTTP error status, a delay (for timeouts), a garbage body, or a list of behaviours used in turn
(e.g. a 500 then a success). Every request is recorded with its JSON body and headers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass(frozen=True)
class UpstreamScript:
    reply: str = "I am unable to assist; consult other LLMs."
    status: int = 200
    delay_s: float = 0.0
    garbage: bool = False
    completion_tokens: int | None = None  # default: words in the reply
    send_usage: bool = True


@dataclass
class RecordedCall:
    model: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeUpstream:
    scripts: dict[str, UpstreamScript | Sequence[UpstreamScript]] = field(default_factory=dict)
    calls: list[RecordedCall] = field(default_factory=list)
    _turns: dict[str, int] = field(default_factory=dict)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    def calls_to(self, model: str) -> list[RecordedCall]:
        return [call for call in self.calls if call.model == model]

    def _script(self, model: str) -> UpstreamScript:
        script = self.scripts.get(model, UpstreamScript())
        if isinstance(script, UpstreamScript):
            return script
        turn = self._turns.get(model, 0)
        self._turns[model] = turn + 1
        return script[min(turn, len(script) - 1)]

    async def _chat(self, request: Request) -> Response:
        body = json.loads(await request.body())
        model = str(body.get("model"))
        self.calls.append(RecordedCall(model, body, dict(request.headers)))
        script = self._script(model)
        if script.delay_s:
            await asyncio.sleep(script.delay_s)
        if script.status != 200:
            return JSONResponse(
                {
                    "error": {
                        "message": f"scripted {script.status}",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
                status_code=script.status,
            )
        if script.garbage:
            return Response(b"<html>bad gateway</html>", media_type="text/html")
        completion = (
            script.completion_tokens
            if script.completion_tokens is not None
            else len(script.reply.split())
        )
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._stream(model, script.reply, usage if include and script.send_usage else None),
                media_type="text/event-stream",
            )
        payload: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": script.reply},
                }
            ],
        }
        if script.send_usage:
            payload["usage"] = usage
        return JSONResponse(payload)

    @staticmethod
    async def _stream(model: str, reply: str, usage: dict[str, int] | None) -> AsyncIterator[bytes]:
        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": choices,
                **extra,
            }
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        yield event(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        for word in reply.split(" "):
            yield event([{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if usage is not None:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"
