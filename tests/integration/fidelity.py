"""Token fidelity: the ids a policy engine received, checked against the training layout.

Spec section 1: turn k's prompt is the chat-template ids, then for every earlier turn the
ids of its cut text and the ids of its observation, each tokenized on its own (the
observation cut to its token cap), the whole left-truncated to the context limit.
:func:`check_training_layout` rebuilds that layout from what was recorded (the prompt ids
each generation request carried, the text it got back, the upstream calls of the same
episode in order) with an independent ``tokenize`` function, and reports every difference.
It knows nothing of the engine: the llama.cpp, llama-server and vLLM tests give it their
recordings (:func:`episodes_from_recording`) and their engine's ``tokenize``.

An observation is paired with the upstream call the route made, by order within its
episode, never looked up by query text: an episode may send the same sub-query to the same
model twice, and a llama.cpp upstream need not answer it the same way twice (it reuses the
KV cache of the previous request, which changes the logits numerically; issue 10 was a
check that took the second reply for both observations).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from router_model.protocol.observation import OBSERVATION_MAX_TOKENS, format_observation
from router_model.protocol.prompt import render_upstream_prompt
from router_model.protocol.turn import ActionKind, cut_turn, parse_action
from router_model.registry import Registry, RouterProfile
from tests.integration.recording import EPISODE, Exchange

Tokenize = Callable[[str], Awaitable[Sequence[int]]]
"""Ids of a text with no special tokens added (``PolicyEngine.tokenize``)."""

Resolve = Callable[[str], str | None]
"""The model a written route name reaches, as :attr:`UpstreamCall.model` names it; None
for an unknown name (no call is made, the observation is ``None``)."""

WINDOW = 8  # ids shown on each side of a mismatch


@dataclass(frozen=True)
class PolicyCall:
    """One generation request: the prompt ids the engine received, the text it returned."""

    prompt_ids: tuple[int, ...]
    text: str


@dataclass(frozen=True)
class UpstreamCall:
    """One upstream attempt: the model, the user message sent, the reply (None: failed)."""

    model: str
    prompt: str
    reply: str | None


@dataclass(frozen=True)
class RecordedEpisode:
    """Everything one episode sent, in order."""

    name: str
    chat_ids: tuple[int, ...]
    policy_calls: tuple[PolicyCall, ...]
    upstream_calls: tuple[UpstreamCall, ...]


@dataclass(frozen=True)
class LayoutLimits:
    """The profile limits that shape the context (``RouterLimits`` fields of the same name)."""

    max_routes: int
    max_context_tokens: int
    max_observation_tokens: int = OBSERVATION_MAX_TOKENS

    @classmethod
    def of(cls, limits: Any) -> LayoutLimits:
        return cls(limits.max_routes, limits.max_context_tokens, limits.max_observation_tokens)


@dataclass(frozen=True)
class Mismatch:
    """Turn ``turn`` of ``episode`` was sent other ids than the layout, from ``index`` on."""

    episode: str
    turn: int
    index: int
    received: tuple[int, ...]
    expected: tuple[int, ...]
    received_len: int
    expected_len: int

    def __str__(self) -> str:
        return (
            f"{self.episode} turn {self.turn + 1}: ids differ at {self.index} "
            f"(received {self.received_len} ids, layout {self.expected_len}): "
            f"received ...{list(self.received)}..., layout ...{list(self.expected)}..."
        )


@dataclass
class FidelityReport:
    """What :func:`check_training_layout` compared, and what differed."""

    episodes: int = 0
    turns: int = 0
    multi_turn_episodes: int = 0
    observations: int = 0
    ids_compared: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # recordings that do not add up

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.problems

    def summary(self) -> str:
        return (
            f"{self.episodes} episodes ({self.multi_turn_episodes} with more than one turn), "
            f"{self.turns} turns, {self.observations} observations, {self.ids_compared} ids "
            f"compared: {len(self.mismatches)} mismatches, {len(self.problems)} problems"
        )

    def details(self, limit: int = 10) -> str:
        lines = [self.summary(), *map(str, self.mismatches[:limit]), *self.problems[:limit]]
        return "\n".join(lines)


def _mismatch(
    episode: str, turn: int, received: Sequence[int], expected: Sequence[int]
) -> Mismatch:
    index = next(
        (i for i, (a, b) in enumerate(zip(received, expected, strict=False)) if a != b),
        min(len(received), len(expected)),
    )
    start = max(index - WINDOW, 0)
    return Mismatch(
        episode,
        turn,
        index,
        tuple(received[start : index + WINDOW]),
        tuple(expected[start : index + WINDOW]),
        len(received),
        len(expected),
    )


class _Calls:
    """An episode's upstream attempts, consumed in order by its routes."""

    def __init__(self, calls: Sequence[UpstreamCall]) -> None:
        self._calls = list(calls)
        self._next = 0

    def reply_for(self, model: str, prompt: str) -> tuple[str | None, bool]:
        """(reply, called) of the route to ``model`` with ``prompt``: its attempts are the
        next calls with that model and prompt, up to the first that succeeded (a retry
        follows a failure only)."""
        reply: str | None = None
        called = False
        while self._next < len(self._calls):
            call = self._calls[self._next]
            if (call.model, call.prompt) != (model, prompt):
                break
            self._next += 1
            called, reply = True, call.reply
            if reply is not None:
                break
        return reply, called

    @property
    def left(self) -> list[UpstreamCall]:
        return self._calls[self._next :]


async def _ids(tokenize: Tokenize, text: str) -> list[int]:
    return list(await tokenize(text)) if text else []


async def check_episode(
    episode: RecordedEpisode,
    tokenize: Tokenize,
    resolve: Resolve,
    limits: LayoutLimits,
    report: FidelityReport,
) -> None:
    """Compare every policy call of ``episode`` with the layout; add the results to ``report``."""
    layout = list(episode.chat_ids)
    calls = _Calls(episode.upstream_calls)
    report.episodes += 1
    report.multi_turn_episodes += len(episode.policy_calls) > 1
    for turn, call in enumerate(episode.policy_calls):
        expected = layout[-limits.max_context_tokens :]
        report.turns += 1
        report.ids_compared += len(expected)
        if list(call.prompt_ids) != expected:
            report.mismatches.append(_mismatch(episode.name, turn, call.prompt_ids, expected))
            return  # later turns would repeat the same difference
        text = cut_turn(call.text)
        layout += await _ids(tokenize, text)
        action = parse_action(text)
        if action.kind is not ActionKind.SEARCH or turn >= limits.max_routes:
            continue  # no observation: an answer, an invalid action, or the final turn
        model = resolve(action.model_name)
        reply = None
        if model is not None:
            prompt = render_upstream_prompt(action.query_remainder)
            reply, called = calls.reply_for(model, prompt)
            if not called:
                report.problems.append(
                    f"{episode.name} turn {turn + 1}: no recorded call to {model} for its route"
                )
        observation = await _ids(tokenize, format_observation(reply))
        layout += observation[: limits.max_observation_tokens]
        report.observations += 1
    for left in calls.left:
        report.problems.append(f"{episode.name}: upstream call no route made: {left}")


async def check_training_layout(
    episodes: Iterable[RecordedEpisode],
    tokenize: Tokenize,
    resolve: Resolve,
    limits: LayoutLimits,
) -> FidelityReport:
    """The report of :func:`check_episode` over all ``episodes``."""
    report = FidelityReport()
    for episode in episodes:
        await check_episode(episode, tokenize, resolve, limits, report)
    return report


def upstream_model_resolver(registry: Registry, profile: RouterProfile) -> Resolve:
    """Written name → the ``model`` field the gateway sends upstream, as the loop resolves it
    (the profile's resolver, then the registry model); None when it reaches no model."""
    resolver = registry.resolver(profile)

    def resolve(written: str) -> str | None:
        name = resolver.resolve(written)
        spec = registry.model(name) if name is not None else None
        return spec.upstream_model if spec is not None else None

    return resolve


def upstream_reply(exchange: Exchange) -> str | None:
    """The reply text of a recorded chat completion (None for a failed attempt), read as
    the gateway's upstream pool reads it: ``choices[0].message.content``."""
    if exchange.status != 200:
        return None
    try:
        content = exchange.json()["choices"][0]["message"]["content"]
    except (ValueError, LookupError, TypeError):
        return None
    return content if isinstance(content, str) else None


def episodes_from_recording(
    engine_calls: Iterable[Exchange],
    upstream_calls: Iterable[Exchange],
    chat_ids: Mapping[str, Sequence[int]],
    *,
    generate_path: str = "/v1/completions",
    upstream_path: str = "/v1/chat/completions",
) -> list[RecordedEpisode]:
    """The recorded exchanges grouped by their :data:`~tests.integration.recording.EPISODE`
    tag; ``chat_ids`` maps each tag to its episode's chat-template ids. An exchange with an
    unknown or no tag raises: the grouping would be a guess."""
    policy: dict[str, list[PolicyCall]] = {name: [] for name in chat_ids}
    upstream: dict[str, list[UpstreamCall]] = {name: [] for name in chat_ids}
    for exchange in engine_calls:
        if exchange.path == generate_path:
            prompt = tuple(exchange.request["prompt"])
            _group(policy, exchange).append(PolicyCall(prompt, exchange.completion_text()))
    for exchange in upstream_calls:
        if exchange.path == upstream_path:
            (message,) = exchange.request["messages"]
            call = UpstreamCall(
                str(exchange.request["model"]), message["content"], upstream_reply(exchange)
            )
            _group(upstream, exchange).append(call)
    return [
        RecordedEpisode(name, tuple(ids), tuple(policy[name]), tuple(upstream[name]))
        for name, ids in chat_ids.items()
    ]


def _group(groups: dict[str, list[Any]], exchange: Exchange) -> list[Any]:
    if exchange.episode not in groups:
        body = json.dumps(exchange.request)[:120]
        raise ValueError(f"exchange not tagged with a known episode ({exchange.episode}): {body}")
    return groups[exchange.episode]


@dataclass(frozen=True)
class EpisodeRequest:
    """One chat request to a gateway profile: a question, its seed, streamed or not."""

    question: str
    seed: int
    stream: bool = False


async def play_tagged(
    client: openai.AsyncOpenAI,
    profile: str,
    requests: Sequence[EpisodeRequest],
    *,
    concurrency: int,
) -> list[dict[str, Any]]:
    """Send ``requests`` to an in-process gateway, ``concurrency`` at a time, each in its own
    task tagged ``str(index)`` (:data:`~tests.integration.recording.EPISODE`); the
    ``router`` trace of each, in order."""
    slots = asyncio.Semaphore(concurrency)

    async def one(index: int, request: EpisodeRequest) -> dict[str, Any]:
        EPISODE.set(str(index))
        messages: Any = [{"role": "user", "content": request.question}]
        async with slots:
            if not request.stream:
                completion = await client.chat.completions.create(
                    model=profile, messages=messages, seed=request.seed
                )
                return dict((completion.model_extra or {})["router"])
            stream = await client.chat.completions.create(
                model=profile, messages=messages, seed=request.seed, stream=True
            )
            chunks = [chunk async for chunk in stream]
            return dict((chunks[-1].model_extra or {})["router"])

    return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))
