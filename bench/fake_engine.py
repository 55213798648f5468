"""A fast fake policy engine speaking vLLM's HTTP API, for benchmarks (aiohttp, no validation).

Run: ``python bench/fake_engine.py PORT [TURN_DELAY_MS]``. Serves ``GET /health``,
``POST /tokenize`` (chat ``messages`` or a ``prompt``), ``POST /detokenize`` and
``POST /v1/completions`` (token-id prompts; non-stream, or SSE with
``stream_options.include_usage``).

The tokenizer is a toy: one id per whitespace-separated word, from a vocabulary that grows as
words are seen (so ``/detokenize`` returns the words joined by single spaces).

Every episode is the same scripted two-route episode, chosen from the marker words already in
the prompt: turn 1 routes to :data:`FIRST_MODEL`, turn 2 to :data:`SECOND_MODEL`, turn 3
answers. Each turn is streamed as a few text chunks. With ``TURN_DELAY_MS`` each completion
takes that long, as a real engine generates (half before the first chunk, the rest spread
between the chunks): the soak benchmark's slow engine.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from aiohttp import web

FIRST_MODEL = "bench-upstream-a"
SECOND_MODEL = "bench-upstream-b"
_MARK_1 = "bench-step-1"
_MARK_2 = "bench-step-2"
_TURNS = (
    f"<think> {_MARK_1} I need the capital first. </think>\n"
    f"<search> {FIRST_MODEL}: What is the capital of Australia? </search>",
    f"<think> {_MARK_2} Now check it with a second model. </think>\n"
    f"<search> {SECOND_MODEL}: Is Canberra the capital of Australia? </search>",
    "<think> Both agree. </think>\n<answer> Canberra </answer>",
)
_CHUNKS_PER_TURN = 4


def _split(text: str, parts: int) -> list[str]:
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)]


class ToyVocabulary:
    """Word ↔ id, grown on demand; the two step markers get ids 0 and 1."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {_MARK_1: 0, _MARK_2: 1}
        self.words: list[str] = [_MARK_1, _MARK_2]

    def encode(self, text: str) -> list[int]:
        ids, words = self.ids, self.words
        out: list[int] = []
        for word in text.split():
            index = ids.get(word)
            if index is None:
                index = ids[word] = len(words)
                words.append(word)
            out.append(index)
        return out

    def decode(self, tokens: list[int]) -> str:
        words = self.words
        return " ".join(words[t] for t in tokens if 0 <= t < len(words))


def _turn_of(prompt: list[int]) -> int:
    if 1 in prompt:
        return 2
    return 1 if 0 in prompt else 0


def _completion_head() -> dict[str, object]:
    return {"id": "cmpl-bench", "object": "text_completion", "created": 1_700_000_000}


def make_app(turn_delay_s: float = 0.0) -> web.Application:
    vocabulary = ToyVocabulary()
    scripted = [
        (text, len(vocabulary.encode(text)), _split(text, _CHUNKS_PER_TURN)) for text in _TURNS
    ]

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="")

    async def tokenize(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        if "messages" in body:
            text = " ".join(str(m.get("content") or "") for m in body["messages"])
            tokens = [*vocabulary.encode("<|im_start|> user"), *vocabulary.encode(text)]
            tokens += vocabulary.encode("<|im_end|> <|im_start|> assistant")
        else:
            tokens = vocabulary.encode(str(body.get("prompt") or ""))
        payload = {"count": len(tokens), "max_model_len": 32768, "tokens": tokens}
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def detokenize(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        payload = {"prompt": vocabulary.decode(body.get("tokens") or [])}
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def completions(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        prompt = body.get("prompt") or []
        text, completion_tokens, chunks = scripted[_turn_of(prompt)]
        usage = {
            "prompt_tokens": len(prompt),
            "completion_tokens": completion_tokens,
            "total_tokens": len(prompt) + completion_tokens,
        }
        head = _completion_head()
        head["model"] = body.get("model", "policy")
        if turn_delay_s:
            await asyncio.sleep(turn_delay_s / 2)
        if not body.get("stream"):
            choice = {"index": 0, "text": text, "finish_reason": "stop", "stop_reason": None}
            payload = {**head, "choices": [choice], "usage": usage}
            return web.Response(body=orjson.dumps(payload), content_type="application/json")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        last = len(chunks) - 1
        events = []
        for index, piece in enumerate(chunks):
            finish = "stop" if index == last else None
            choice = {"index": 0, "text": piece, "finish_reason": finish, "stop_reason": None}
            events.append(b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            final = {**head, "choices": [], "usage": usage}
            events.append(b"data: " + orjson.dumps(final) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        if turn_delay_s:  # paced: the rest of the turn's time between its chunks
            pause = turn_delay_s / 2 / len(events)
            for event in events:
                await asyncio.sleep(pause)
                await response.write(event)
        else:
            await response.write(b"".join(events))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/tokenize", tokenize)
    app.router.add_post("/detokenize", detokenize)
    app.router.add_post("/v1/completions", completions)
    return app


if __name__ == "__main__":
    delay_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    web.run_app(
        make_app(delay_ms / 1000),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        print=None,
        access_log=None,
        backlog=4096,  # a thousand connections opened at once (aiohttp's default is 128)
    )
