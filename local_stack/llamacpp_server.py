"""llama-cpp-python's OpenAI-compatible server, with what a Router-R1 policy engine needs.

Run it like ``python -m llama_cpp.server`` (same options)::

    python -m local_stack.llamacpp_server --model M.gguf --n_threads 2 --port 8001

It is the library's own app (``llama_cpp.server.app.create_app``: chat completions,
``/v1/models``, ``/extras/detokenize``...) with these additions, because the stock server
cannot serve a policy faithfully (see :mod:`server.engines` for the engine differences):

- ``POST /v1/completions`` also takes ``prompt`` as a list of token ids (the stock
  request model accepts only strings, and a string is re-tokenized as a whole, which
  merges tokens across the pieces the training context tokenized separately), and
  ``include_stop_str_in_output`` (vLLM's field: the stock server always cuts the stop
  string off, and the caller cannot tell a stop string from an end-of-sequence token).
  Streams end with ``usage``, and every reply's usage has
  ``prompt_tokens_details.cached_tokens`` (prompt tokens whose KV state was reused, not
  re-prefilled) plus llama.cpp-style ``timings``.
- ``POST /extras/tokenize`` takes ``add_special`` (default true, the stock behaviour:
  a BOS is added when the model wants one); special-token text is always parsed.
- ``POST /extras/tokenize/chat`` ``{"messages", "add_generation_prompt"}``: the GGUF's
  own chat template rendered as Hugging Face's ``apply_chat_template`` does
  (:mod:`local_stack.chat_template`), tokenized with special tokens parsed and none
  added; 400 when the model has no template. Replies ``{"tokens", "text"}``.
- ``GET /health``: 200 once the model is loaded.
- Defaults changed: ``interrupt_requests`` false (the stock default aborts a running
  stream whenever another request arrives, which would cut concurrent episodes) and
  ``logits_all`` false (it keeps logits for every prompt token: memory and prefill time
  nobody here uses).

The server serves one request at a time (the library's lock); a waiting request queues.
Start it with ``OMP_WAIT_POLICY=passive`` on a machine with few cores
(:func:`local_stack.processes.llama_server_environment` explains why).
"""

# No ``from __future__ import annotations``: FastAPI reads the request models from the
# endpoint annotations at run time. This module is only imported to run the server (it
# needs llama-cpp-python[server], installed by scripts/setup_llamacpp.sh).

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import anyio
import llama_cpp
import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request
from llama_cpp.server import app as stock
from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
from llama_cpp.server.errors import RouteErrorHandler
from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings
from llama_cpp.server.types import CreateCompletionRequest
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from local_stack.chat_template import ChatTemplateError, render_chat_template

__all__ = ["build_app", "main"]

_COMPLETION_EXCLUDE = {
    "n",
    "best_of",
    "logit_bias_type",
    "user",
    "min_tokens",
    "include_stop_str_in_output",
}


@dataclass
class _Record:
    """What one completion did inside the engine (filled by the hooks)."""

    prompt: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    prompt_eval: int | None = None
    prompt_s: float = 0.0
    decode_s: float = 0.0


@contextlib.contextmanager
def _recording(llama: Any, record: _Record) -> Iterator[None]:
    """Hook ``llama.generate``/``llama.eval`` (instance attributes shadow the methods)
    to record the prompt, the sampled tokens (the last one included: the stock code
    never evaluates it) and how many prompt tokens were really evaluated."""
    generate, evaluate = llama.generate, llama.eval

    def recording_generate(tokens: list[int], *args: Any, **kwargs: Any) -> Iterator[int]:
        record.prompt = list(tokens)  # generate() mutates its argument
        inner = generate(tokens, *args, **kwargs)
        try:
            for token in inner:
                record.tokens.append(int(token))
                yield token
        finally:
            inner.close()

    def recording_eval(tokens: Any) -> None:
        start = time.perf_counter()
        try:
            evaluate(tokens)
        finally:
            elapsed = time.perf_counter() - start
            if record.prompt_eval is None:
                record.prompt_eval = len(tokens)
                record.prompt_s += elapsed
            else:
                record.decode_s += elapsed

    llama.generate, llama.eval = recording_generate, recording_eval
    try:
        yield
    finally:
        del llama.generate, llama.eval


def _is_eog(llama: Any, token: int) -> bool:
    return bool(llama_cpp.llama_vocab_is_eog(llama._model.vocab, token))


def _stop_text(llama: Any, record: _Record, stops: list[str]) -> str:
    """The stop string that ended the completion ("" when it ended otherwise).

    The stock code cuts the text before the first stop string (in list order) found in
    the decoded completion; an end-of-generation token is the only other "stop"."""
    if not record.tokens or _is_eog(llama, record.tokens[-1]):
        return ""
    decoded: bytes = llama.detokenize(record.tokens, prev_tokens=record.prompt)
    return next((stop for stop in stops if stop.encode("utf-8") in decoded), "")


def _usage(llama: Any, record: _Record) -> dict[str, Any]:
    completion = len(record.tokens)
    if record.tokens and _is_eog(llama, record.tokens[-1]):
        completion -= 1
    prompt = len(record.prompt)
    evaluated = prompt if record.prompt_eval is None else record.prompt_eval
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": max(prompt - evaluated, 0)},
    }


def _timings(record: _Record, usage: dict[str, Any]) -> dict[str, Any]:
    prompt_n = usage["prompt_tokens"] - usage["prompt_tokens_details"]["cached_tokens"]
    return {
        "prompt_n": prompt_n,
        "prompt_ms": record.prompt_s * 1000,
        "cache_n": usage["prompt_tokens_details"]["cached_tokens"],
        "predicted_n": usage["completion_tokens"],
        "predicted_ms": record.decode_s * 1000,
    }


def _finish(
    llama: Any, record: _Record, reply: dict[str, Any], stops: list[str], include_stop: bool
) -> None:
    """Complete the last reply (or final stream chunk): stop string, usage, timings."""
    choice = reply["choices"][0]
    if include_stop and choice.get("finish_reason") == "stop":
        choice["text"] = (choice.get("text") or "") + _stop_text(llama, record, stops)
    reply["usage"] = _usage(llama, record)
    reply["timings"] = _timings(record, reply["usage"])


def _stop_list(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    return [s for s in (stop or []) if isinstance(s, str)]


class TokenCompletionRequest(CreateCompletionRequest):
    """The stock completion request, plus token-id prompts and ``include_stop_str_in_output``."""

    prompt: str | list[int] | list[str] = ""  # type: ignore[assignment]
    include_stop_str_in_output: bool = False


class TokenizeRequest(BaseModel):
    model: str | None = None
    input: str
    add_special: bool = True


class ChatTokenizeRequest(BaseModel):
    model: str | None = None
    messages: list[dict[str, Any]]
    add_generation_prompt: bool = True


def _proxy() -> contextlib.AbstractAsyncContextManager[Any]:
    """The library's model proxy, holding its one-request-at-a-time lock."""
    return contextlib.asynccontextmanager(stock.get_llama_proxy)()


def _request_kwargs(body: TokenCompletionRequest) -> dict[str, Any]:
    prompt = body.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        if len(prompt) > 1:
            raise HTTPException(400, "only one prompt per request")
        prompt = prompt[0]
    kwargs: dict[str, Any] = body.model_dump(exclude=_COMPLETION_EXCLUDE)
    kwargs["prompt"] = prompt
    return kwargs


async def _publish(
    request: Request,
    send: Any,
    body: TokenCompletionRequest,
    kwargs: dict[str, Any],
    stops: list[str],
) -> None:
    """Stream one completion as SSE events (the stock publisher, plus :func:`_finish`)."""
    record = _Record()
    async with _proxy() as proxy:
        llama: Any = stock.prepare_request_resources(body, proxy, body.model, kwargs)
        with _recording(llama, record):
            async with send:
                try:
                    iterator = await run_in_threadpool(llama, **kwargs)
                    async for chunk in iterate_in_threadpool(iterator):
                        if chunk["choices"][0].get("finish_reason") is not None:
                            _finish(llama, record, chunk, stops, body.include_stop_str_in_output)
                        await send.send({"data": json.dumps(chunk)})
                        if await request.is_disconnected():
                            raise anyio.get_cancelled_exc_class()()
                except Exception as exc:  # the status line is sent: report in-band
                    error = {"message": f"{type(exc).__name__}: {exc}", "type": "server_error"}
                    await send.send({"data": json.dumps({"error": error})})
                await send.send({"data": "[DONE]"})


router = APIRouter(route_class=RouteErrorHandler)


@router.post("/v1/completions")
async def completions(request: Request, body: TokenCompletionRequest) -> Any:
    kwargs = _request_kwargs(body)
    stops = _stop_list(body.stop)
    if body.stream:
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](10)
        return EventSourceResponse(
            receive,
            data_sender_callable=partial(_publish, request, send, body, kwargs, stops),
            sep="\n",
            ping_message_factory=cast(Any, stock._ping_message_factory),
        )
    record = _Record()
    async with _proxy() as proxy:
        llama: Any = stock.prepare_request_resources(body, proxy, body.model, kwargs)
        with _recording(llama, record):
            reply: dict[str, Any] = await run_in_threadpool(llama, **kwargs)
            _finish(llama, record, reply, stops, body.include_stop_str_in_output)
    return reply


@router.post("/extras/tokenize")
async def tokenize(body: TokenizeRequest) -> dict[str, list[int]]:
    async with _proxy() as proxy:
        llama = proxy(body.model)
        tokens = llama.tokenize(body.input.encode("utf-8"), add_bos=body.add_special, special=True)
    return {"tokens": [int(t) for t in tokens]}


@router.post("/extras/tokenize/chat")
async def tokenize_chat(body: ChatTokenizeRequest) -> dict[str, Any]:
    async with _proxy() as proxy:
        llama = proxy(body.model)
        try:
            text = render_chat_template(
                llama.metadata.get("tokenizer.chat_template"),
                body.messages,
                add_generation_prompt=body.add_generation_prompt,
                special_tokens=_special_tokens(llama),
            )
        except ChatTemplateError as exc:
            raise HTTPException(400, str(exc)) from exc
        tokens = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    return {"tokens": [int(t) for t in tokens], "text": text}


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def build_app(server_settings: ServerSettings, model_settings: list[ModelSettings]) -> FastAPI:
    """The library's app (which loads the model) with the additions above in front."""
    app: FastAPI = stock.create_app(server_settings=server_settings, model_settings=model_settings)
    stock_routes = list(app.router.routes)
    app.include_router(router)
    # Whatever include_router added (the routes, or one entry for the whole router in newer
    # FastAPI) moves in front, to take precedence over the stock routes of the same path.
    ours = [r for r in app.router.routes if not any(r is s for s in stock_routes)]
    app.router.routes[:] = [*ours, *stock_routes]
    return app


def _special_tokens(llama: Any) -> dict[str, str]:
    """The special-token strings a chat template may use, as transformers passes them."""
    model = llama._model
    ids = {
        "bos_token": model.token_bos(),
        "eos_token": model.token_eos(),
        "pad_token": _metadata_int(llama, "tokenizer.ggml.padding_token_id"),
        "unk_token": _metadata_int(llama, "tokenizer.ggml.unknown_token_id"),
    }
    return {
        name: str(model.token_get_text(token))
        for name, token in ids.items()
        if token is not None and token >= 0
    }


def _metadata_int(llama: Any, key: str) -> int | None:
    value = llama.metadata.get(key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> None:
    """``python -m llama_cpp.server``'s command line, serving :func:`build_app`."""
    parser = argparse.ArgumentParser(
        description="llama-cpp-python's server with token-id prompts and chat tokenization."
    )
    add_args_from_model(parser, Settings)
    args = parser.parse_args(argv)
    if args.interrupt_requests is None:
        args.interrupt_requests = False
    if args.logits_all is None:
        args.logits_all = False
    try:
        # (the library annotates these as returning the class; they return instances)
        server_settings = cast(ServerSettings, parse_model_from_args(ServerSettings, args))
        model_settings = [cast(ModelSettings, parse_model_from_args(ModelSettings, args))]
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    app = build_app(server_settings, model_settings)
    print(f"llama.cpp server ready: {args.model}", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host=os.getenv("HOST", server_settings.host),
        port=int(os.getenv("PORT", server_settings.port)),
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
