"""A fast OpenAI-compatible stub upstream for benchmarks (aiohttp, no validation).

Run: ``python bench/fake_upstream.py PORT [CHUNK_DELAY_MS [REPLY_DELAY_MS]]``. Non-stream
requests get a fixed completion with usage; ``stream: true`` gets three content chunks, a usage
chunk (when asked) and ``[DONE]``. With ``CHUNK_DELAY_MS``, each stream chunk is sent after that
pause (a paced stream, as a real model writes it); without, all at once. With
``REPLY_DELAY_MS``, a non-stream reply takes that long (a slow model: the soak benchmark).
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from aiohttp import web

CHUNK_DELAY_S = web.AppKey("chunk_delay_s", float)
REPLY_DELAY_S = web.AppKey("reply_delay_s", float)

_REPLY = orjson.dumps(
    {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "stub",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Canberra is the capital."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26},
    }
)


def _chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "stub",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


_STREAM = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Canberra "}),
    _chunk({"content": "is the capital."}, "stop"),
]
_USAGE = (
    b"data: "
    + orjson.dumps(
        {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "stub",
            "choices": [],
            "usage": {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26},
        }
    )
    + b"\n\n"
)


async def chat(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    if not body.get("stream"):
        if request.app[REPLY_DELAY_S]:
            await asyncio.sleep(request.app[REPLY_DELAY_S])
        return web.Response(body=_REPLY, content_type="application/json")
    delay_s = request.app[CHUNK_DELAY_S]
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for event in _STREAM:
        if delay_s:
            await asyncio.sleep(delay_s)
        await response.write(event)
    if (body.get("stream_options") or {}).get("include_usage"):
        await response.write(_USAGE)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def make_app(chunk_delay_s: float = 0.0, reply_delay_s: float = 0.0) -> web.Application:
    app = web.Application()
    app[CHUNK_DELAY_S] = chunk_delay_s
    app[REPLY_DELAY_S] = reply_delay_s
    app.router.add_post("/v1/chat/completions", chat)
    return app


if __name__ == "__main__":
    delay_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    reply_delay_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    web.run_app(
        make_app(delay_ms / 1000, reply_delay_ms / 1000),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        print=None,
        access_log=None,
        backlog=4096,  # a thousand connections opened at once (aiohttp's default is 128)
    )
