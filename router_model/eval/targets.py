"""What is evaluated: a router profile or a plain model served by the proxy, or a random router.

Every target answers one question over the proxy's OpenAI-compatible API and reports the
answer, the routes, the cost (USD and the reference's raw-cost units) and, for router
profiles, whether the response side passed the format reward.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from router_model.protocol.answer import extract_answer
from router_model.rewards import format_reward, raw_cost

DIRECT_PROMPT = (
    "Answer the following question with a short phrase (a few words), no explanation.\n"
    "Question: {question}\nAnswer:"
)
"""The prompt for plain-model baselines (router profiles get the bare question)."""


@dataclass(frozen=True)
class TargetReply:
    answer: str
    latency_s: float
    routes: int = 0
    cost_usd: float = 0.0
    raw_cost: float = 0.0
    models: tuple[str, ...] = ()
    outcome: str = "answer"
    format_ok: bool | None = None


class Target(Protocol):
    name: str

    async def ask(self, client: httpx.AsyncClient, question: str, index: int) -> TargetReply:
        """Answer one question (``index``: its position, for seeded choices)."""
        ...


class TargetError(Exception):
    """The proxy answered with an error (recorded; the question is retried on resume)."""


async def _post(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/chat/completions", json=body)
    if response.status_code != 200:
        raise TargetError(f"HTTP {response.status_code}: {response.text[:300]}")
    payload: dict[str, Any] = response.json()
    return payload


async def model_card(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await client.get(f"/v1/models/{name}")
    if response.status_code != 200:
        raise TargetError(f"{name!r} is not served by the proxy (HTTP {response.status_code})")
    card: dict[str, Any] = response.json()
    return card


def _content(payload: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = payload["choices"][0]["message"]
    return message


class RouterProfileTarget:
    """A router profile: the bare question; route, cost and format from the ``router`` trace."""

    def __init__(self, name: str, *, max_tokens: int | None = None) -> None:
        self.name = name
        self.max_tokens = max_tokens

    async def ask(self, client: httpx.AsyncClient, question: str, index: int) -> TargetReply:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": "user", "content": question}],
        }
        started = time.perf_counter()
        payload = await _post(client, body)
        latency = time.perf_counter() - started
        message = _content(payload)
        trace = payload.get("router") or {}
        totals = trace.get("totals") or {}
        steps = trace.get("steps") or []
        known = {
            str(s.get("written_model", "")).strip().lower()
            for s in steps
            if s.get("written_model") and s.get("model")
        }
        response_text = message.get("reasoning_content") or ""
        fmt = format_reward(response_text, lambda name: name.strip().lower() in known)
        return TargetReply(
            answer=str(message.get("content") or ""),
            latency_s=latency,
            routes=int(totals.get("routes", 0)),
            cost_usd=float((payload.get("usage") or {}).get("cost", totals.get("cost_usd", 0.0))),
            raw_cost=float(totals.get("raw_cost", 0.0)),
            models=tuple(totals.get("models", ())),
            outcome=str(trace.get("outcome", "answer")),
            format_ok=fmt == 0.0,
        )


class ModelTarget:
    """A plain registry model, passed through by the proxy (a single-model baseline)."""

    def __init__(
        self, name: str, *, prompt: str = DIRECT_PROMPT, max_tokens: int = 64, routes: int = 0
    ) -> None:
        self.name = name
        self.prompt = prompt
        self.max_tokens = max_tokens
        self.routes = routes
        self._output_price: float | None = None

    async def _price(self, client: httpx.AsyncClient) -> float:
        if self._output_price is None:
            card = await model_card(client, self.name)
            self._output_price = float((card.get("pricing") or {}).get("output_per_1m", 0.0))
        return self._output_price

    async def ask(self, client: httpx.AsyncClient, question: str, index: int) -> TargetReply:
        price = await self._price(client)
        body = {
            "model": self.name,
            "messages": [{"role": "user", "content": self.prompt.format(question=question)}],
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
        }
        started = time.perf_counter()
        payload = await _post(client, body)
        latency = time.perf_counter() - started
        text = str(_content(payload).get("content") or "")
        usage = payload.get("usage") or {}
        completion = int(usage.get("completion_tokens", 0))
        return TargetReply(
            answer=(extract_answer(text) or text).strip().splitlines()[0] if text.strip() else "",
            latency_s=latency,
            routes=self.routes,
            cost_usd=float(usage.get("cost", 0.0)),
            raw_cost=raw_cost([(completion, price)]),
            models=(self.name,),
        )


class RandomRouterTarget:
    """The random-router baseline: each question goes to a pool model drawn with ``seed``."""

    def __init__(self, models: list[str], *, seed: int = 42, prompt: str = DIRECT_PROMPT) -> None:
        if not models:
            raise ValueError("a random router needs at least one model")
        self.name = "random:" + ",".join(models)
        self.seed = seed
        self._targets = [ModelTarget(m, prompt=prompt, routes=1) for m in models]

    async def ask(self, client: httpx.AsyncClient, question: str, index: int) -> TargetReply:
        choice = random.Random(f"{self.seed}:{index}").randrange(len(self._targets))
        return await self._targets[choice].ask(client, question, index)


async def resolve_target(
    client: httpx.AsyncClient, spec: str, *, prompt: str = DIRECT_PROMPT
) -> Target:
    """``random:A,B,...``, a router profile name, or a registry model name."""
    if spec.startswith("random:"):
        models = [m.strip() for m in spec.removeprefix("random:").split(",") if m.strip()]
        for model in models:
            await model_card(client, model)
        return RandomRouterTarget(models, prompt=prompt)
    card = await model_card(client, spec)
    if "router" in card:
        return RouterProfileTarget(spec)
    return ModelTarget(spec, prompt=prompt)
