"""From an HTTP body to a validated request, a question, and the policy overrides.

How a router profile reads a chat request: the question is the text of the **last user
message**. System/developer messages and earlier turns are not shown to the policy: the
checkpoints were trained on exactly one question in one user message (spec section 1), and
anything else in the context changes their behaviour. Passthrough requests are forwarded whole.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request

from server.api.chat_completions.protocol import ChatCompletionRequest, ChatMessage
from server.errors import APIError, bad_request


async def read_json_body(request: Request, max_bytes: int, timeout_s: float) -> dict[str, Any]:
    """The request's JSON object: 413 above ``max_bytes``, 408 when it has not all arrived
    within ``timeout_s``, 400 for anything not a JSON object. A client that leaves while
    sending raises Starlette's ``ClientDisconnect`` (counted 499)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    receive = request.receive  # directly: Starlette's stream() generator costs a few µs more
    try:
        async with asyncio.timeout(timeout_s):
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                chunk: bytes = message.get("body", b"")
                more = message.get("more_body", False)
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                chunks.append(chunk)
    except TimeoutError:
        raise APIError(
            408,
            f"The request body did not arrive within {timeout_s:g} s.",
            code="request_timeout",
            headers={"connection": "close"},
        ) from None
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not raw:
        raise bad_request("The request body is empty: send a JSON chat completion request.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def _too_large(max_bytes: int) -> APIError:
    return APIError(413, f"The request body exceeds {max_bytes} bytes.", code="request_too_large")


def parse_chat_request(body: dict[str, Any]) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "is required"
        raise bad_request(f"{param}: {message}" if param else message, param=param) from None


def _message_text(message: ChatMessage, index: int) -> str:
    if isinstance(message.content, str):
        return message.content
    if message.content is None:
        return ""
    parts: list[str] = []
    for part in message.content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise bad_request(
                f"Router profiles accept text only; messages[{index}] has a "
                f"{part.get('type')!r} content part.",
                param=f"messages[{index}].content",
                code="unsupported_content",
            )
        parts.append(part["text"])
    return "".join(parts)


def question_of(request: ChatCompletionRequest, max_chars: int) -> str:
    """The text of the last user message (see the module docstring)."""
    for index in range(len(request.messages) - 1, -1, -1):
        message = request.messages[index]
        if message.role == "user":
            text = _message_text(message, index)
            if not text.strip():
                raise bad_request(
                    "The last user message is empty.", param=f"messages[{index}].content"
                )
            if len(text) > max_chars:
                raise bad_request(
                    f"The question has {len(text)} characters; the limit is {max_chars}.",
                    param=f"messages[{index}].content",
                )
            return text
    raise bad_request("A router profile needs a user message with the question.", param="messages")


def reject_unsupported(request: ChatCompletionRequest) -> None:
    """400 for what a router profile cannot honour, naming the parameter."""
    unsupported: list[tuple[str, bool]] = [
        ("tools", bool(request.tools)),
        ("functions", bool(request.functions)),
        ("tool_choice", request.tool_choice not in (None, "none")),
        ("n", request.n is not None and request.n > 1),
        ("logprobs", bool(request.logprobs)),
        (
            "response_format",
            request.response_format is not None
            and request.response_format.get("type") not in (None, "text"),
        ),
    ]
    for param, present in unsupported:
        if present:
            raise bad_request(
                f"Router profile {request.model!r} does not support {param!r}: the policy "
                f"answers in text through its own routing protocol. Send the request to a "
                f"registry model for plain passthrough.",
                param=param,
                code="unsupported_parameter",
            )


def client_stop(request: ChatCompletionRequest) -> list[str]:
    if request.stop is None:
        return []
    return [request.stop] if isinstance(request.stop, str) else list(request.stop)
