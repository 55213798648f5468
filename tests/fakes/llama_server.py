"""A fake of llama.cpp's ``llama-server`` native API, as an in-process ASGI app.

Serves what :class:`~server.engines.llama_server.LlamaServerEngine` uses, shaped as the
real server (llama-cpp-python 0.3.36's vendored llama.cpp) answers:

- ``GET /health`` (200, or 503 "Loading model"), ``GET /props`` (``chat_template``,
  ``bos_token``, ``eos_token``, ``total_slots``);
- ``POST /tokenize`` ``{content, add_special, parse_special}`` → ``{tokens}``;
  ``POST /detokenize`` ``{tokens}`` → ``{content}``;
- ``POST /apply-template`` ``{messages, add_generation_prompt}`` → ``{prompt}``: like
  llama.cpp, a leading BOS string is cut off the rendering when the model adds BOS itself;
- ``POST /completion`` with a token-id ``prompt``: the stop string is cut off ``content``
  and named in ``stopping_word`` (``stop_type`` ``word``; ``eos``; ``limit``), the EOS
  token never reaches the text, ``timings.cache_n`` counts the prompt tokens shared with
  the previous prompt (one slot), ``tokens_cached`` every token in the slot afterwards.
  Streaming is SSE ``data: {...}`` events, the last with ``"stop": true``, no ``[DONE]``.

The toy tokenizer of :mod:`tests.fakes.toy_tokenizer` stands in for the model's; its
``<|endoftext|>`` (id 0) is both BOS and EOS, as in Qwen2.5's GGUF. Outputs are scripted:
a list of :class:`LlamaTurn` (or plain strings) emitted in order. Every completion
request body is recorded in :attr:`FakeLlamaServer.completions`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.fakes.toy_tokenizer import ENDOFTEXT, EOS_ID, ToyTokenizer

BASE_URL = "http://llama-server.test:8091"
TEMPLATE = "{% for message in messages %}...toy chatml...{% endfor %}"
BOS_TEMPLATE = "{{ bos_token }}" + TEMPLATE


@dataclass(frozen=True)
class LlamaTurn:
    """One scripted completion; ``status`` answers an HTTP error instead, ``stream_error``
    sends an error event mid-stream, ``drop_final`` ends the stream without its last event."""

    text: str = ""
    status: int | None = None
    stream_error: int | None = None
    drop_final: bool = False


@dataclass
class _Output:
    pieces: list[tuple[str, int]] = field(default_factory=list)  # (text sent, token id)
    stop_type: str = "eos"
    stopping_word: str = ""

    @property
    def content(self) -> str:
        return "".join(text for text, _ in self.pieces)


def _error(status: int, message: str) -> JSONResponse:
    kind = {400: "invalid_request_error", 503: "unavailable_error"}.get(status, "server_error")
    return JSONResponse(
        {"error": {"code": status, "message": message, "type": kind}}, status_code=status
    )


class FakeLlamaServer:
    """The fake; :attr:`app` is the ASGI app, :meth:`client` a client bound to it."""

    def __init__(
        self,
        script: Sequence[str | LlamaTurn] = (),
        *,
        add_bos: bool = False,
        template_writes_bos: bool = False,
    ) -> None:
        self.tokenizer = ToyTokenizer()
        self.add_bos = add_bos
        self.template_writes_bos = template_writes_bos
        self.healthy = True
        self.completions: list[dict[str, Any]] = []
        self.requests: list[str] = []  # the path of every request, in order
        self._script = list(script)
        self._turn = 0
        self._slot: list[int] = []  # the one slot's tokens after the last completion
        self.app = self._build_app()

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app))

    def rendered_template(self, user_message: str) -> str:
        """What Hugging Face's ``apply_chat_template`` renders (BOS included when written)."""
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], add_generation_prompt=True
        )
        return (ENDOFTEXT if self.template_writes_bos else "") + text

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        app.add_api_route("/health", self._health, methods=["GET"])
        app.add_api_route("/props", self._props, methods=["GET"])
        app.add_api_route("/tokenize", self._tokenize, methods=["POST"])
        app.add_api_route("/detokenize", self._detokenize, methods=["POST"])
        app.add_api_route("/apply-template", self._apply_template, methods=["POST"])
        app.add_api_route("/completion", self._completion, methods=["POST"])
        return app

    async def _health(self, request: Request) -> JSONResponse:
        self.requests.append(request.url.path)
        if not self.healthy:
            return _error(503, "Loading model")
        return JSONResponse({"status": "ok"})

    async def _props(self, request: Request) -> JSONResponse:
        self.requests.append(request.url.path)
        template = BOS_TEMPLATE if self.template_writes_bos else TEMPLATE
        return JSONResponse(
            {
                "chat_template": template,
                "bos_token": ENDOFTEXT,
                "eos_token": ENDOFTEXT,
                "total_slots": 1,
                "default_generation_settings": {"n_ctx": 4096},
            }
        )

    async def _tokenize(self, request: Request) -> JSONResponse:
        self.requests.append(request.url.path)
        body = await request.json()
        if body.get("parse_special", True) is not True:
            return _error(400, "fake: parse_special=false is not modelled")
        tokens = self.tokenizer.encode(body["content"])
        if body.get("add_special", False) and self.add_bos and tokens:  # "" stays [] (real)
            tokens = [EOS_ID, *tokens]
        return JSONResponse({"tokens": tokens})

    async def _detokenize(self, request: Request) -> JSONResponse:
        self.requests.append(request.url.path)
        body = await request.json()
        return JSONResponse({"content": self.tokenizer.decode(body.get("tokens", []))})

    async def _apply_template(self, request: Request) -> JSONResponse:
        self.requests.append(request.url.path)
        body = await request.json()
        (message,) = body["messages"]
        if body.get("add_generation_prompt", True) is not True:
            return _error(400, "fake: only add_generation_prompt=true is modelled")
        text = self.rendered_template(message["content"])
        if self.add_bos and text.startswith(ENDOFTEXT):
            text = text[len(ENDOFTEXT) :]  # llama.cpp adds it back when it tokenizes
        return JSONResponse({"prompt": text})

    async def _completion(self, request: Request) -> Response:
        self.requests.append(request.url.path)
        body = await request.json()
        self.completions.append(body)
        prompt = body.get("prompt")
        if not isinstance(prompt, list) or not all(isinstance(i, int) for i in prompt):
            return _error(400, "fake: only token-id prompts are modelled")
        if self._turn >= len(self._script):
            return _error(500, f"fake llama-server script exhausted after {self._turn} turns")
        turn = self._script[self._turn]
        self._turn += 1
        turn = LlamaTurn(turn) if isinstance(turn, str) else turn
        if turn.status is not None:
            return _error(turn.status, f"scripted failure {turn.status}")
        output = self._generate(turn.text, body)
        cache_n = _common_prefix(self._slot, prompt, limit=len(prompt) - 1)
        self._slot = [*prompt, *(token for _, token in output.pieces)]
        final = {
            "index": 0,
            "content": "" if body.get("stream") else output.content,
            "tokens": [],
            "id_slot": 0,
            "stop": True,
            "model": "fake",
            "tokens_predicted": len(output.pieces),
            "tokens_evaluated": len(prompt),
            "truncated": False,
            "stop_type": output.stop_type,
            "stopping_word": output.stopping_word,
            "tokens_cached": len(self._slot),
            "timings": {"cache_n": cache_n, "prompt_n": len(prompt) - cache_n},
        }
        if body.get("stream"):
            return StreamingResponse(_sse(output, final, turn), media_type="text/event-stream")
        return JSONResponse(final)

    def _generate(self, text: str, body: dict[str, Any]) -> _Output:
        """Emit ``text`` token by token, then EOS, as llama-server cuts stop strings."""
        stops = [s for s in body.get("stop") or [] if s]
        n_predict = body.get("n_predict", -1)
        out, produced, sent = _Output(), "", 0
        for token in [*self.tokenizer.encode(text), EOS_ID]:
            if 0 <= n_predict <= len(out.pieces):
                out.stop_type = "limit"
                if out.pieces:  # the held-back text goes out with the last token
                    last_text, last_token = out.pieces[-1]
                    out.pieces[-1] = (last_text + produced[sent:], last_token)
                return out
            if token == EOS_ID:
                out.pieces.append((produced[sent:], token))  # EOS shows no text
                return out
            produced += self.tokenizer.decode([token])
            hits = sorted((produced.find(s), s) for s in stops if s in produced)
            if hits:
                index, word = hits[0]
                out.pieces.append((produced[sent:index], token))
                out.stop_type, out.stopping_word = "word", word
                return out
            # A text end that may begin a stop string is held back, as llama-server does.
            held = any(produced.endswith(s[:k]) for s in stops for k in range(1, len(s)))
            out.pieces.append(("" if held else produced[sent:], token))
            sent = sent if held else len(produced)
        return out


def _common_prefix(a: Sequence[int], b: Sequence[int], *, limit: int) -> int:
    n = 0
    while n < min(len(a), len(b), limit) and a[n] == b[n]:
        n += 1
    return n


async def _sse(output: _Output, final: dict[str, Any], turn: LlamaTurn) -> AsyncIterator[str]:
    def event(payload: dict[str, Any]) -> str:
        return f"data: {json.dumps(payload)}\n\n"

    yield ": ping\n\n"
    for text, token in output.pieces:
        yield event({"index": 0, "content": text, "tokens": [token], "stop": False, "id_slot": 0})
    if turn.stream_error is not None:
        code = turn.stream_error
        yield event({"error": {"code": code, "message": "scripted stream error", "type": "x"}})
        return
    if not turn.drop_final:
        yield event(final)
