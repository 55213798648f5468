"""A protocol-faithful fake of vLLM's OpenAI-compatible server, as an in-process ASGI app.

Serves ``GET /health``, ``GET /v1/models``, ``POST /tokenize`` (chat messages or a
prompt), ``POST /detokenize`` and ``POST /v1/completions`` (token-id or text prompts,
``stop`` with ``include_stop_str_in_output``, ``max_tokens``, SSE streaming with
``stream_options.include_usage``), with the toy tokenizer of :mod:`tests.fakes.toy_tokenizer`.

Outputs are scripted: a list of turns emitted in order, or a callable from the decoded
prompt to the turn. Each scripted text is "generated" token by token, so stop strings,
``max_tokens`` and the EOS token count as in vLLM. Every completion request is recorded
(:attr:`FakeVLLM.completions`) so tests can assert the exact prompt ids.

Use::

    fake = FakeVLLM(["<think>x</think><answer>y</answer>"])
    async with fake.client() as client:          # httpx.AsyncClient over ASGITransport
        engine = VLLMEngine(client, base_url=fake.base_url, model=fake.model)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.fakes.toy_tokenizer import EOS_ID, ToyTokenizer

DEFAULT_MODEL = "ulab-ai/Router-R1-Qwen2.5-3B-Instruct"
DEFAULT_BASE_URL = "http://policy.test/v1"


@dataclass(frozen=True)
class ScriptedTurn:
    """One scripted completion: its text, optional delays, or an HTTP error instead."""

    text: str = ""
    delay_s: float = 0.0
    token_delay_s: float = 0.0
    status: int | None = None
    ignore_stop: bool = False  # misbehave: generate past stop strings (tests the post-hoc cut)


Script = Sequence[str | ScriptedTurn] | Callable[[str], str | ScriptedTurn]


@dataclass
class CompletionRecord:
    """One ``/v1/completions`` request as the fake received it."""

    prompt_ids: list[int]
    prompt_text: str
    body: dict[str, Any]


@dataclass
class _Output:
    deltas: list[str] = field(default_factory=list)
    finish_reason: str = "stop"
    stop_reason: str | int | None = None
    completion_tokens: int = 0

    @property
    def text(self) -> str:
        return "".join(self.deltas)


def _error(status: int, message: str) -> JSONResponse:
    kind = {400: "BadRequestError", 404: "NotFoundError"}.get(status, "InternalServerError")
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return JSONResponse(body, status_code=status)


class FakeVLLM:
    """The fake server; :attr:`app` is the ASGI app, :meth:`client` a client bound to it."""

    def __init__(
        self,
        script: Script = (),
        *,
        model: str = DEFAULT_MODEL,
        base_url: str = DEFAULT_BASE_URL,
        tokenizer: ToyTokenizer | None = None,
        max_model_len: int = 32768,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.tokenizer = tokenizer or ToyTokenizer()
        self.max_model_len = max_model_len
        self.completions: list[CompletionRecord] = []
        self.tokenize_requests: list[dict[str, Any]] = []
        self.healthy = True
        self._script: Script = script
        self._turn = 0
        self.app = self._build_app()

    # -- helpers for tests ------------------------------------------------------------

    def set_script(self, script: Script) -> None:
        self._script = script
        self._turn = 0

    def chat_ids(self, user_message: str) -> list[int]:
        """What ``/tokenize`` returns for one user message with the generation prompt."""
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], add_generation_prompt=True
        )
        return self.tokenizer.encode(text)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` whose requests reach this app in-process."""
        transport = httpx.ASGITransport(app=self.app)
        root = self.base_url.removesuffix("/v1")
        return httpx.AsyncClient(transport=transport, base_url=root, **kwargs)

    # -- the app ------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        app.add_api_route("/health", self._health, methods=["GET"])
        app.add_api_route("/v1/models", self._models, methods=["GET"])
        app.add_api_route("/tokenize", self._tokenize, methods=["POST"])
        app.add_api_route("/detokenize", self._detokenize, methods=["POST"])
        app.add_api_route("/v1/completions", self._completions, methods=["POST"])
        return app

    async def _health(self) -> Response:
        return Response(status_code=200 if self.healthy else 503)

    async def _models(self) -> JSONResponse:
        card = {"id": self.model, "object": "model", "owned_by": "vllm"}
        return JSONResponse({"object": "list", "data": [card]})

    def _model_error(self, body: dict[str, Any]) -> JSONResponse | None:
        if body.get("model") != self.model:
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        return None

    async def _tokenize(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.tokenize_requests.append(body)
        if (error := self._model_error(body)) is not None:
            return error
        if "messages" in body:
            text = self.tokenizer.apply_chat_template(
                body["messages"], add_generation_prompt=body.get("add_generation_prompt", True)
            )
        elif isinstance(body.get("prompt"), str):
            text = body["prompt"]
            if body.get("add_special_tokens", True):
                return _error(400, "fake: add_special_tokens=true is not modelled")
        else:
            return _error(400, "either messages or prompt is required")
        tokens = self.tokenizer.encode(text)
        return JSONResponse(
            {"count": len(tokens), "max_model_len": self.max_model_len, "tokens": tokens}
        )

    async def _detokenize(self, request: Request) -> JSONResponse:
        body = await request.json()
        if (error := self._model_error(body)) is not None:
            return error
        return JSONResponse({"prompt": self.tokenizer.decode(body["tokens"])})

    def _next_turn(self, prompt_text: str) -> ScriptedTurn:
        if callable(self._script):
            turn = self._script(prompt_text)
        else:
            if self._turn >= len(self._script):
                raise LookupError(f"fake vLLM script exhausted after {self._turn} turns")
            turn = self._script[self._turn]
        self._turn += 1
        return ScriptedTurn(turn) if isinstance(turn, str) else turn

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        if (error := self._model_error(body)) is not None:
            return error
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            prompt_ids = self.tokenizer.encode(prompt)
        elif isinstance(prompt, list) and all(isinstance(i, int) for i in prompt):
            prompt_ids = list(prompt)
        else:
            return _error(400, "prompt must be a string or a list of token ids")
        max_tokens = body.get("max_tokens", 16)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return _error(400, "max_tokens must be at least 1")
        if len(prompt_ids) + max_tokens > self.max_model_len:
            return _error(
                400,
                f"This model's maximum context length is {self.max_model_len} tokens. "
                f"However, you requested {len(prompt_ids) + max_tokens} tokens.",
            )
        unknown = [i for i in prompt_ids if not self.tokenizer.knows(i)]
        if unknown:
            return _error(400, f"Token id {unknown[0]} is out of vocabulary")
        prompt_text = self.tokenizer.decode(prompt_ids)
        self.completions.append(CompletionRecord(prompt_ids, prompt_text, body))
        try:
            turn = self._next_turn(prompt_text)
        except LookupError as exc:
            return _error(500, str(exc))
        if turn.delay_s:
            await asyncio.sleep(turn.delay_s)
        if turn.status is not None:
            return _error(turn.status, f"scripted failure {turn.status}")
        output = self._generate(turn.text, body, max_tokens, ignore_stop=turn.ignore_stop)
        if body.get("stream"):
            return StreamingResponse(
                self._sse(output, body, len(prompt_ids), turn.token_delay_s),
                media_type="text/event-stream",
            )
        return JSONResponse(
            {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": 0,
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "text": output.text,
                        "logprobs": None,
                        "finish_reason": output.finish_reason,
                        "stop_reason": output.stop_reason,
                    }
                ],
                "usage": _usage(len(prompt_ids), output.completion_tokens),
            }
        )

    def _generate(
        self, text: str, body: dict[str, Any], max_tokens: int, *, ignore_stop: bool = False
    ) -> _Output:
        """Emit ``text`` token by token, then EOS, honouring stop strings and max_tokens."""
        stops: list[str] = [] if ignore_stop else [s for s in body.get("stop") or [] if s]
        keep_stop = bool(body.get("include_stop_str_in_output", False))
        skip_special = bool(body.get("skip_special_tokens", True))
        out = _Output()
        produced = ""
        for token in [*self.tokenizer.encode(text), EOS_ID]:
            if out.completion_tokens >= max_tokens:
                out.finish_reason = "length"
                return out
            out.completion_tokens += 1
            if token == EOS_ID:
                if not skip_special:
                    out.deltas.append(self.tokenizer.decode([token]))
                return out
            piece = self.tokenizer.decode([token])
            candidate = produced + piece
            hits = [(candidate.find(s), s) for s in stops if s in candidate]
            if hits:
                index, stop = min(hits)
                end = index + len(stop) if keep_stop else index
                out.deltas.append(candidate[len(produced) : end])
                out.stop_reason = stop
                return out
            out.deltas.append(piece)
            produced = candidate
        return out

    async def _sse(
        self, output: _Output, body: dict[str, Any], prompt_len: int, token_delay_s: float
    ) -> AsyncIterator[str]:
        def event(payload: dict[str, Any]) -> str:
            return f"data: {json.dumps(payload)}\n\n"

        def chunk(text: str, finish: str | None, stop: str | int | None) -> dict[str, Any]:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": finish,
                "stop_reason": stop,
            }
            return {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": 0,
                "model": self.model,
                "choices": [choice],
                "usage": None,
            }

        deltas = output.deltas or [""]
        for index, delta in enumerate(deltas):
            if token_delay_s:
                await asyncio.sleep(token_delay_s)
            last = index == len(deltas) - 1
            finish = output.finish_reason if last else None
            yield event(chunk(delta, finish, output.stop_reason if last else None))
        if (body.get("stream_options") or {}).get("include_usage"):
            yield event(
                {
                    "id": "cmpl-fake",
                    "object": "text_completion",
                    "created": 0,
                    "model": self.model,
                    "choices": [],
                    "usage": _usage(prompt_len, output.completion_tokens),
                }
            )
        yield "data: [DONE]\n\n"


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
