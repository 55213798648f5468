"""A pooled engine connection the server already closed fails on write: idempotent engine
calls are sent once more on a fresh connection, generations never (they may have run)."""

from __future__ import annotations

import httpx
import pytest

from router_model.episode.engine import EngineUnavailable, GenerationParams
from server.engines import LlamaServerEngine, VLLMEngine

STALE = httpx.ReadError("[Errno None] Can not write request body for http://engine/tokenize")


class FailFirst:
    """Raises ``error`` on the first ``failures`` requests, then answers ``body``."""

    def __init__(self, error: Exception, body: dict[str, object], failures: int = 1) -> None:
        self.error, self.body, self.failures = error, body, failures
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if len(self.paths) <= self.failures:
            raise self.error
        return httpx.Response(200, json=self.body)


def _engine(cls: type[VLLMEngine], handler: FailFirst) -> VLLMEngine:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return cls(client, base_url="http://engine:8000/v1", model="policy")


@pytest.mark.parametrize("cls", [LlamaServerEngine, VLLMEngine])
async def test_a_tokenize_on_a_stale_connection_is_sent_again(cls: type[VLLMEngine]) -> None:
    handler = FailFirst(STALE, {"tokens": [1, 2, 3]})
    assert await _engine(cls, handler).tokenize("hello") == [1, 2, 3]
    assert handler.paths == ["/tokenize", "/tokenize"]


async def test_a_second_failure_is_the_engine_being_unavailable() -> None:
    handler = FailFirst(httpx.ConnectError("refused"), {"tokens": [1]}, failures=2)
    with pytest.raises(EngineUnavailable, match="tokenize: unreachable: ConnectError"):
        await _engine(LlamaServerEngine, handler).tokenize("hello")
    assert len(handler.paths) == 2


async def test_a_timeout_is_not_sent_again() -> None:
    handler = FailFirst(httpx.ReadTimeout("slow"), {"tokens": [1]})
    with pytest.raises(EngineUnavailable, match="timed out"):
        await _engine(LlamaServerEngine, handler).tokenize("hello")
    assert len(handler.paths) == 1


@pytest.mark.parametrize(
    ("cls", "path"), [(LlamaServerEngine, "/completion"), (VLLMEngine, "/v1/completions")]
)
async def test_a_generation_is_never_sent_again(cls: type[VLLMEngine], path: str) -> None:
    handler = FailFirst(STALE, {})
    params = GenerationParams(max_tokens=8, temperature=1.0, top_p=1.0)
    with pytest.raises(EngineUnavailable):
        await _engine(cls, handler).generate([1, 2], params)
    assert handler.paths == [path]
