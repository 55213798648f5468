"""The upstream pool: one shared HTTP client for every endpoint, bounded per model, with the
Router-R1 sub-query call (never raises for upstream trouble) and the passthrough calls."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx
import orjson
import yarl
from httpx_aiohttp import AiohttpTransport

from router_model.episode.route import UpstreamReply, UpstreamStatus
from router_model.registry import Endpoint, ModelSpec, Registry
from server.upstream.errors import (
    UpstreamBadResponseError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeoutError,
    one_line,
)
from server.upstream.response import UpstreamResponse, aiohttp_post, aiohttp_session
from server.upstream.result import UpstreamResult, Usage, forwarded_headers
from server.upstream.settings import UpstreamSettings
from server.upstream.stream import UpstreamStream
from server.upstream.transport import build_aiohttp_transport, build_client, uses_aiohttp

logger = logging.getLogger("router_r1.upstream")

_JSON = "application/json"


@dataclass
class _Failure:
    status: UpstreamStatus  # timeout | http_error | connect_error | bad_response
    message: str
    http_status: int | None = None
    body: Any = None
    error_type: str | None = None
    retry_after_s: float | None = None

    def to_error(self, attempts: int) -> UpstreamError:
        if self.status == "http_error" and self.http_status is not None:
            return UpstreamHTTPError(
                self.http_status,
                self.message,
                self.error_type,
                self.body,
                attempts=attempts,
                retry_after_s=self.retry_after_s,
            )
        if self.status == "timeout":
            return UpstreamTimeoutError(self.message, attempts=attempts)
        if self.status == "bad_response":
            return UpstreamBadResponseError(self.message, attempts=attempts)
        return UpstreamConnectionError(self.message, attempts=attempts)


class _Failed(Exception):
    def __init__(self, failure: _Failure, attempts: int) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.attempts = attempts


@dataclass
class _Progress:
    attempts: int = 0
    last: _Failure | None = None


@dataclass
class _Opened:
    response: UpstreamResponse
    release: Callable[[], None]
    attempts: int

    async def close(self) -> None:
        try:
            await self.response.aclose()
        finally:
            self.release()


def _once(semaphore: asyncio.Semaphore) -> Callable[[], None]:
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            semaphore.release()

    return release


def _dumps(payload: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(payload)
    except (orjson.JSONEncodeError, TypeError):  # e.g. integers beyond 64 bits
        return json.dumps(payload, ensure_ascii=False).encode()


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), in seconds."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            ms = float(value)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms >= 0:
            return ms / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """(message, type) of an OpenAI-style (or vLLM/FastAPI-style) error body."""
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, dict):
        message, kind = error.get("message"), error.get("type")
    elif isinstance(error, str):
        message, kind = error, body.get("type")
    else:
        message, kind = body.get("message") or body.get("detail"), body.get("type")
    return (
        message if isinstance(message, str) and message else None,
        kind if isinstance(kind, str) and kind else None,
    )


def _http_failure(status: int, raw: bytes, headers: Mapping[str, str]) -> _Failure:
    body: Any = None
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    message, kind = _error_fields(body)
    if message is None:
        snippet = one_line(raw[:200].decode("utf-8", "replace")) if raw else ""
        message = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    return _Failure(
        status="http_error",
        message=message,
        http_status=status,
        body=body,
        error_type=kind,
        retry_after_s=_retry_after_s(headers),
    )


def _transport_failure(exc: Exception) -> tuple[_Failure, bool]:
    """(failure, retryable) for an exception raised before a response arrived."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError | httpx.RemoteProtocolError):
        # (httpx_aiohttp reports a refused connection and a dropped one as ConnectTimeout.)
        return _Failure("connect_error", f"cannot reach the upstream ({text})"), True
    if isinstance(exc, httpx.TimeoutException):
        return _Failure("timeout", f"the upstream did not answer in time ({text})"), False
    if isinstance(exc, httpx.NetworkError):
        return _Failure("connect_error", f"network error ({text})"), True
    if isinstance(exc, httpx.HTTPError):
        return _Failure("connect_error", f"cannot call the upstream ({text})"), False
    logger.warning("unexpected error calling an upstream", exc_info=exc)
    return _Failure("bad_response", f"unexpected upstream failure ({text})"), False


def _body_read_failure(exc: Exception) -> _Failure:
    if isinstance(exc, httpx.TimeoutException):
        return _Failure("timeout", f"the upstream stalled while sending its reply ({exc!r})")
    return _Failure("connect_error", f"the upstream reply broke off ({type(exc).__name__})")


def _parse_json_object(raw: bytes) -> dict[str, Any] | _Failure:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        snippet = one_line(raw[:80].decode("utf-8", "replace"))
        return _Failure("bad_response", f"the upstream sent a non-JSON body: {snippet!r}")
    if not isinstance(payload, dict):
        return _Failure("bad_response", "the upstream body is not a JSON object")
    return payload


class UpstreamPool:
    """Calls the registry's upstream endpoints through ONE shared ``httpx.AsyncClient``.

    ``registry_provider`` is called on every request (hot reload: swap the registry, the pool
    follows). Concurrency per model name is bounded by a semaphore sized by the settings'
    ``max_connections_per_model`` or else the model endpoint's ``max_connections``. The pool
    owns ``transport`` (default: aiohttp-backed) and closes it in :meth:`aclose`.
    """

    def __init__(
        self,
        registry_provider: Callable[[], Registry],
        settings: UpstreamSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._registry_provider = registry_provider
        self.settings = settings or UpstreamSettings()
        self._transport = (
            transport if transport is not None else build_aiohttp_transport(self.settings)
        )
        self._client = build_client(self.settings, self._transport)
        # Requests bypass the client (see ``_send``), sent with its default headers.
        self._client_headers = dict(self._client.headers)
        # The default transport was built here: call its aiohttp session directly.
        self._aiohttp = (
            self._transport
            if transport is None and isinstance(self._transport, AiohttpTransport)
            else None
        )
        if self._aiohttp is not None:  # what aiohttp decodes (httpx may offer more: zstd)
            self._client_headers["accept-encoding"] = "gzip, deflate"
        self._urls: dict[str, tuple[httpx.URL, yarl.URL]] = {}
        self._semaphores: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self._random = random.Random()

    @property
    def client(self) -> httpx.AsyncClient:
        return self._client

    @property
    def uses_aiohttp(self) -> bool:
        return uses_aiohttp(self._client)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> UpstreamPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- the Router-R1 call

    async def route_call(self, model: ModelSpec, prompt: str, *, max_tokens: int) -> UpstreamReply:
        """One Router-R1 sub-query: the rendered ``prompt`` as the single user message, with the
        model's registry sampling defaults. Never raises for upstream trouble (only
        ``CancelledError`` propagates); the whole call, retries included, is bounded by
        ``settings.total_timeout_s``."""
        started = time.perf_counter()
        progress = _Progress()
        total = self.settings.total_timeout_s

        def failed(failure: _Failure) -> UpstreamReply:
            return UpstreamReply(
                model=model.name,
                status=failure.status,
                text=None,
                latency_s=time.perf_counter() - started,
                attempts=max(progress.attempts, 1),
                error=one_line(f"{model.name}: {failure.message}", 300),
                http_status=failure.http_status,
            )

        endpoint = self._endpoint(model)
        if isinstance(endpoint, _Failure):
            return failed(endpoint)
        defaults = model.defaults
        payload: dict[str, Any] = {
            "model": model.upstream_model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": defaults.temperature,
            "top_p": defaults.top_p,
            "max_tokens": max_tokens,
            "stream": False,
        }
        if defaults.seed is not None:
            payload["seed"] = defaults.seed
        try:
            async with asyncio.timeout(total) as deadline:
                opened = await self._open(
                    model, endpoint, _dumps(payload), False, deadline.when(), progress
                )
                try:
                    raw = await opened.response.aread()
                except Exception as exc:
                    return failed(_body_read_failure(exc))
                finally:
                    await opened.close()
        except _Failed as exc:
            return failed(exc.failure)
        except TimeoutError:
            last = f" (last: {progress.last.message})" if progress.last else ""
            return failed(_Failure("timeout", f"no reply within {total:g} s{last}"))

        parsed = _parse_json_object(raw)
        if isinstance(parsed, _Failure):
            return failed(parsed)
        text, finish_reason, problem = _completion_text(parsed)
        if problem is not None:
            return failed(problem)
        usage = Usage.from_json(parsed.get("usage"))
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        return UpstreamReply(
            model=model.name,
            status="ok",
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=model.pricing.cost_usd(prompt_tokens, completion_tokens),
            latency_s=time.perf_counter() - started,
            attempts=opened.attempts,
            error=None,
            http_status=opened.response.status_code,
            usage_missing=usage is None,
            finish_reason=finish_reason,
        )

    # ----------------------------------------------------------------- passthrough

    async def chat(self, model: ModelSpec, body: dict[str, Any]) -> UpstreamResult:
        """Forward a non-streamed chat completion request, only ``model`` replaced by the
        upstream id. Raises :class:`UpstreamError` subclasses (after retries)."""
        if body.get("stream"):
            raise ValueError("chat() forwards non-streamed requests; use chat_stream()")
        started = time.perf_counter()
        endpoint = self._endpoint(model)
        if isinstance(endpoint, _Failure):
            raise endpoint.to_error(0)
        progress = _Progress()
        limit = self.settings.passthrough_timeout_s
        try:
            async with asyncio.timeout(limit) as deadline:
                opened = await self._open(
                    model,
                    endpoint,
                    _dumps({**body, "model": model.upstream_model}),
                    False,
                    deadline.when(),
                    progress,
                )
                try:
                    raw = await opened.response.aread()
                except Exception as exc:
                    raise _body_read_failure(exc).to_error(opened.attempts) from exc
                finally:
                    await opened.close()
        except _Failed as exc:
            raise exc.failure.to_error(exc.attempts) from None
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"{model.name}: no reply within {limit:g} s", attempts=progress.attempts
            ) from None
        parsed = _parse_json_object(raw)
        if isinstance(parsed, _Failure):
            raise parsed.to_error(opened.attempts)
        usage = Usage.from_json(parsed.get("usage"))
        return UpstreamResult(
            model=model.name,
            status_code=opened.response.status_code,
            body=parsed,
            content=raw,
            headers=forwarded_headers(opened.response.headers),
            latency_s=time.perf_counter() - started,
            attempts=opened.attempts,
            usage=usage,
            cost_usd=(
                model.pricing.cost_usd(usage.prompt_tokens, usage.completion_tokens)
                if usage
                else 0.0
            ),
        )

    async def chat_stream(self, model: ModelSpec, body: dict[str, Any]) -> UpstreamStream:
        """Open a streamed chat completion (``stream: true``; ``stream_options.include_usage``
        forced on so usage can be accounted). Errors before the first byte raise
        :class:`UpstreamError` subclasses (after retries); ``settings.passthrough_timeout_s``
        bounds the wait for the response headers. The caller must close the returned stream."""
        started = time.perf_counter()
        endpoint = self._endpoint(model)
        if isinstance(endpoint, _Failure):
            raise endpoint.to_error(0)
        options = body.get("stream_options")
        client_requested_usage = isinstance(options, dict) and options.get("include_usage") is True
        payload = {
            **body,
            "model": model.upstream_model,
            "stream": True,
            "stream_options": {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            },
        }
        content = _dumps(payload)
        progress = _Progress()
        limit = self.settings.passthrough_timeout_s
        opened: _Opened | None = None
        try:
            async with asyncio.timeout(limit) as deadline:
                stream_deadline = deadline.when()
                opened = await self._open(model, endpoint, content, True, deadline.when(), progress)
                media_type = opened.response.headers.get("content-type", "")
                if "json" in media_type:  # an upstream that ignored ``stream`` (or an error)
                    raw = await opened.response.aread()
                    message, _ = _error_fields(_parse_json_object(raw))
                    raise _Failed(
                        _Failure(
                            "bad_response",
                            message or f"the upstream answered a stream request with {media_type}",
                        ),
                        opened.attempts,
                    )
        except _Failed as exc:
            if opened is not None:
                await opened.close()
            raise exc.failure.to_error(exc.attempts) from None
        except TimeoutError:
            if opened is not None:
                await opened.close()
            raise UpstreamTimeoutError(
                f"{model.name}: no response within {limit:g} s", attempts=progress.attempts
            ) from None
        except httpx.HTTPError as exc:
            if opened is not None:
                await opened.close()
            raise _body_read_failure(exc).to_error(progress.attempts) from exc
        except BaseException:
            if opened is not None:
                await opened.close()
            raise
        return UpstreamStream(
            model=model,
            response=opened.response,
            release=opened.release,
            client_requested_usage=client_requested_usage,
            attempts=opened.attempts,
            latency_s=time.perf_counter() - started,
            prompt_bytes=len(content),
            deadline=stream_deadline,
            timeout_s=limit,
            idle_timeout_s=self.settings.stream_read_timeout(endpoint),
        )

    # ----------------------------------------------------------------- internals

    def _endpoint(self, model: ModelSpec) -> Endpoint | _Failure:
        try:
            return self._registry_provider().endpoint(model.endpoint)
        except KeyError:
            return _Failure(
                "connect_error",
                f"endpoint {model.endpoint!r} of model {model.name!r} is not in the registry",
            )

    def _semaphore(self, model: ModelSpec, endpoint: Endpoint) -> asyncio.Semaphore:
        limit = self.settings.model_limit(endpoint)
        current = self._semaphores.get(model.name)
        if current is None or current[0] != limit:  # new model, or the registry changed it
            current = (limit, asyncio.Semaphore(limit))
            self._semaphores[model.name] = current
        return current[1]

    def _url(self, endpoint: Endpoint) -> tuple[httpx.URL, yarl.URL]:
        """The endpoint's chat completions URL, parsed once (for httpx, for aiohttp)."""
        urls = self._urls.get(endpoint.base_url)
        if urls is None:
            if len(self._urls) > 256:  # registries were reloaded with other endpoints
                self._urls.clear()
            url = f"{endpoint.base_url}/chat/completions"
            urls = self._urls[endpoint.base_url] = (httpx.URL(url), yarl.URL(url))
        return urls

    async def _send(
        self,
        endpoint: Endpoint,
        content: bytes,
        headers: dict[str, str],
        timeouts: dict[str, Any],
    ) -> UpstreamResponse:
        """One POST, streamed (headers read, body not).

        ``AsyncClient.send`` is bypassed: its per-request work (URL merging, the cookie jar,
        auth and redirect flows) cost a third of the pool's CPU per call, and a proxy wants none
        of it (a shared cookie jar would even leak one upstream session into every caller's).
        With the default transport, its aiohttp session is called directly (see
        :mod:`server.upstream.response`).
        """
        httpx_url, aiohttp_url = self._url(endpoint)
        if self._aiohttp is not None:
            session = aiohttp_session(self._aiohttp)
            return await aiohttp_post(session, aiohttp_url, content, headers, timeouts)
        request = httpx.Request(
            "POST", httpx_url, content=content, headers=headers, extensions={"timeout": timeouts}
        )
        response = await self._transport.handle_async_request(request)
        response.request = request
        return response

    def _headers(self, endpoint: Endpoint, stream: bool) -> dict[str, str]:
        headers = {
            **self._client_headers,
            "content-type": _JSON,
            "accept": "text/event-stream" if stream else _JSON,
        }
        if stream:
            headers["accept-encoding"] = "identity"
        if endpoint.api_key_env:
            key = os.environ.get(endpoint.api_key_env)
            if key:
                headers["authorization"] = f"Bearer {key}"
        return headers

    async def _open(
        self,
        model: ModelSpec,
        endpoint: Endpoint,
        content: bytes,
        stream: bool,
        deadline: float | None,
        progress: _Progress,
    ) -> _Opened:
        """POST until a 2xx response (headers read, body not), holding one slot of the model's
        semaphore for the returned response; raises :class:`_Failed` when out of retries."""
        settings = self.settings
        headers = self._headers(endpoint, stream)
        read = settings.stream_read_timeout(endpoint) if stream else settings.read_timeout(endpoint)
        timeouts = {
            "connect": settings.connect_timeout(endpoint),
            "read": read,
            "write": read,
            "pool": None,
        }
        semaphore = self._semaphore(model, endpoint)
        loop = asyncio.get_running_loop()
        read_timeout_retried = False
        while True:
            progress.attempts += 1
            attempt = progress.attempts
            await semaphore.acquire()
            release = _once(semaphore)
            try:
                response = await self._send(endpoint, content, headers, timeouts)
            except Exception as exc:
                release()
                failure, retryable = _transport_failure(exc)
                if (
                    isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout)
                    and settings.retry_read_timeouts
                    and not read_timeout_retried
                ):
                    retryable = read_timeout_retried = True
            except BaseException:
                release()
                raise
            else:
                if 200 <= response.status_code < 300:
                    return _Opened(response, release, attempt)
                try:
                    raw = await response.aread()
                except httpx.HTTPError:
                    raw = b""
                finally:
                    try:
                        await response.aclose()
                    finally:
                        release()
                failure = _http_failure(response.status_code, raw, response.headers)
                retryable = response.status_code == 429 or response.status_code >= 500
            progress.last = failure
            if not retryable or attempt > settings.max_retries:
                raise _Failed(failure, attempt)
            delay = settings.backoff_s(attempt, self._random.random())
            if failure.retry_after_s is not None:
                if failure.retry_after_s > settings.backoff_cap_s:
                    raise _Failed(failure, attempt)  # it asked for longer than we may wait
                delay = failure.retry_after_s
            if deadline is not None and loop.time() + delay >= deadline:
                raise _Failed(failure, attempt)  # the retry could not finish in time
            logger.debug(
                "upstream %s attempt %d failed (%s); retrying in %.3f s",
                model.name,
                attempt,
                failure.message,
                delay,
            )
            await asyncio.sleep(delay)


def _completion_text(payload: dict[str, Any]) -> tuple[str, str | None, _Failure | None]:
    """(text, finish_reason, problem) of a chat completion body."""
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        message, _ = _error_fields(payload)
        reason = f"an error in a 2xx body: {message}" if message else "no choices in the reply"
        return "", None, _Failure("bad_response", reason)
    choice = choices[0]
    message_obj = choice.get("message")
    content = message_obj.get("content") if isinstance(message_obj, dict) else None
    if not isinstance(content, str):
        return "", None, _Failure("bad_response", "choices[0].message.content is missing")
    finish = choice.get("finish_reason")
    return content, finish if isinstance(finish, str) else None, None
