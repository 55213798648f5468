"""Several fake policy engine servers behind one httpx transport, with faults to inject.

Each fake (``FakeVLLM``) answers at its own host (``http://<name>.test/v1``); the transport
routes by host, records every request (host, path, headers) and can make a host fail as a
dead server does (``down``: the connection is refused) or cut a stream after some SSE events
(``cut_after_events``: the connection breaks mid-reply), so failover is tested with real
engine clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import yaml

from router_model.registry import Registry, parse_registry
from tests.fakes.registry import PROFILE, REGISTRY_FILE
from tests.fakes.toy_tokenizer import ToyTokenizer
from tests.fakes.vllm_server import FakeVLLM, Script

MODEL = "ulab-ai/Router-R1-Qwen2.5-3B-Instruct"


def base_url(name: str) -> str:
    return f"http://{name}.test/v1"


@dataclass(frozen=True)
class SeenRequest:
    host: str
    path: str
    headers: dict[str, str]


class _CutStream(httpx.AsyncByteStream):
    """Passes ``events`` SSE events on, then breaks like a connection that was reset."""

    def __init__(self, inner: httpx.AsyncByteStream, events: int) -> None:
        self._inner = inner
        self._events = events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        body = b"".join([chunk async for chunk in self._inner])
        for event in body.split(b"\n\n")[: self._events]:
            yield event + b"\n\n"
        raise httpx.RemoteProtocolError("peer closed connection (injected)")

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class ReplicaHosts(httpx.AsyncBaseTransport):
    """The transport; ``fakes[name]`` is the fake server at host ``<name>.test``."""

    fakes: dict[str, FakeVLLM]
    down: set[str] = field(default_factory=set)
    cut_after_events: dict[str, int] = field(default_factory=dict)
    requests: list[SeenRequest] = field(default_factory=list)

    @classmethod
    def of(cls, names: Iterable[str], script: Script = ()) -> ReplicaHosts:
        """Fakes of one checkpoint: they share a tokenizer (the same ids for the same text)."""
        tokenizer = ToyTokenizer()
        return cls(
            {name: FakeVLLM(script, base_url=base_url(name), tokenizer=tokenizer) for name in names}
        )

    def completions(self, name: str) -> int:
        return len(self.fakes[name].completions)

    def hosts_of(self, path: str) -> list[str]:
        return [seen.host for seen in self.requests if seen.path == path]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = request.url.host.removesuffix(".test")
        self.requests.append(SeenRequest(name, request.url.path, dict(request.headers)))
        if name in self.down or name not in self.fakes:
            raise httpx.ConnectError(f"connection refused: {request.url.host}", request=request)
        transport = httpx.ASGITransport(app=self.fakes[name].app)
        response = await transport.handle_async_request(request)
        if request.url.path.endswith("/completions") and name in self.cut_after_events:
            assert isinstance(response.stream, httpx.AsyncByteStream)
            response.stream = _CutStream(response.stream, self.cut_after_events.pop(name))
        return response


def replica_registry(names: Iterable[str], **profile: Any) -> Registry:
    """``model_registry.yaml`` with the ``router-r1`` policy served by the replicas ``names``
    (endpoints of the same names at the fakes' hosts) and ``profile`` fields replaced."""
    data = yaml.safe_load(REGISTRY_FILE.read_text())
    names = list(names)
    for name in names:
        data["endpoints"][name] = {"base_url": base_url(name)}
    (entry,) = [p for p in data["profiles"] if p["name"] == PROFILE]
    entry["policy"].pop("endpoint")
    entry["policy"]["endpoints"] = names
    entry.update(profile)
    return Registry(parse_registry(yaml.safe_dump(data), "<replicas>", environ={}))
