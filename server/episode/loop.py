"""The Router-R1 episode loop: one implementation, for serving and for training rollouts.

Semantics (spec sections 1-3):

- The user message is the profile's policy template filled with the question; the
  engine applies the checkpoint's chat template to it (``chat_prompt_ids``).
- Up to ``limits.max_routes`` turns, then ONE final turn in which a route is not
  executed. Every turn is generated with stop strings ``</search>``/``</answer>`` from
  the context's engine prompt (left-truncated to ``max_context_tokens``), cut with
  ``cut_turn``, tokenized on its own and appended; then ``parse_action`` decides:
  answer → the episode ends; a valid route → the written name is resolved with the
  profile's resolver, the upstream is called (an unknown name is not called), and the
  observation ``format_observation(reply)`` (``None`` for an unknown name or a failed
  call; upstream tags neutralised) is tokenized on its own, cut to
  ``max_observation_tokens`` ids and appended; an invalid or missing action appends no
  observation and uses up the turn (the turn text itself stays in the context, as in
  the reference rollout).
- The answer is taken only from a policy turn's own ``<answer>`` block, never from an
  observation. Without one the outcome is ``no_answer`` and ``answer_text`` is "".
- Query sent upstream: the whole remainder after the first ``:`` (``query_remainder``,
  not stripped) rather than the reference's ``content.split(":")[1]``. The two agree
  whenever the search has exactly one ``:`` (what the format reward requires); with
  more, the reference silently dropped the rest of the sub-question.
- Client ``stop`` strings are not sent to the engine (they would end the policy's
  turns in the middle of its reasoning and change the trajectory); they cut the visible
  answer, as OpenAI's ``stop`` cuts the visible output.
- The request deadline (``limits.deadline_s``, or the client's shorter ``timeout_s``)
  bounds every wait of the episode (``asyncio.timeout_at`` on one shared deadline, so
  the consumer's time between events is counted but never interrupted); when it
  passes, the episode finishes with outcome ``deadline_exceeded`` and what it has.
- Time waiting on the engine and on upstreams is measured separately;
  ``overhead_ms`` is the rest. Engine failures propagate as ``EngineError`` /
  ``EngineUnavailable``; cancellation (client disconnect) propagates at once.
- The trace keeps when things happened (``started_at``, one ``time.time()`` at the start;
  each step's ``started_ms``/``upstream_started_ms``, offsets on the runner's clock) so
  spans and the trace viewer can be drawn after the episode without slowing it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal, TypeVar

from router_model.protocol.observation import format_observation
from router_model.protocol.prompt import fill_policy_prompt, render_upstream_prompt
from router_model.protocol.tags import ANSWER_CLOSE, SEARCH_CLOSE
from router_model.protocol.turn import NO_ACTION, Action, ActionKind, cut_turn, parse_action
from router_model.registry import Registry, RouterProfile
from server.aio import aclose
from server.engines.base import (
    EngineError,
    FinishReason,
    GenerationChunk,
    GenerationParams,
    PolicyEngine,
)
from server.episode.context import PolicyContext
from server.episode.events import (
    AnswerSplitter,
    EpisodeEvent,
    EpisodeFinished,
    RouteFinished,
    RouteStarted,
    TextDelta,
)
from server.episode.ledger import Ledger
from server.episode.result import EpisodeResult, EpisodeUsage
from server.episode.trace import (
    REPLY_EXCERPT_CHARS,
    UPSTREAM_DEADLINE,
    UPSTREAM_NOT_EXECUTED,
    UPSTREAM_UNKNOWN_MODEL,
    Outcome,
    RouterTrace,
    RouteStep,
    StepAction,
    extract_think,
)
from server.upstream.reply import RouteCaller, UpstreamReply

T = TypeVar("T")

MAX_CLIENT_STOPS = 4
_MIN_TOP_P = 1e-3
_MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class PolicyOverrides:
    """What a client may change for one request; clamped by :func:`resolve_settings`."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    timeout_s: float | None = None


@dataclass(frozen=True)
class EpisodeSettings:
    """The effective settings of one request."""

    params: GenerationParams
    answer_stops: tuple[str, ...]
    deadline_s: float


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def resolve_settings(
    profile: RouterProfile, overrides: PolicyOverrides, *, grammar: str | None = None
) -> EpisodeSettings:
    """Profile defaults, overridden by the client within the profile's limits.

    temperature ∈ [0, 2]; top_p ∈ [0.001, 1]; max_tokens (per turn) ∈ [1,
    ``max_turn_tokens``]; at most 4 non-empty stop strings; ``timeout_s`` can only
    shorten ``deadline_s``.
    """
    decoding, limits = profile.decoding, profile.limits
    temperature = decoding.temperature if overrides.temperature is None else overrides.temperature
    top_p = decoding.top_p if overrides.top_p is None else overrides.top_p
    max_tokens = limits.max_turn_tokens
    if overrides.max_tokens is not None:
        max_tokens = int(_clamp(overrides.max_tokens, 1, limits.max_turn_tokens))
    deadline = limits.deadline_s
    if overrides.timeout_s is not None and overrides.timeout_s > 0:
        deadline = min(deadline, overrides.timeout_s)
    stops = tuple(dict.fromkeys(s for s in overrides.stop if s))[:MAX_CLIENT_STOPS]
    params = GenerationParams(
        max_tokens=max_tokens,
        temperature=_clamp(temperature, 0.0, _MAX_TEMPERATURE),
        top_p=_clamp(top_p, _MIN_TOP_P, 1.0),
        seed=decoding.seed if overrides.seed is None else overrides.seed,
        grammar=grammar,
    )
    return EpisodeSettings(params=params, answer_stops=stops, deadline_s=deadline)


class EpisodeRunner:
    """Runs Router-R1 episodes for one profile; safe to share between requests."""

    def __init__(
        self,
        engine: PolicyEngine,
        route_caller: RouteCaller,
        registry: Registry,
        profile: RouterProfile,
        clock: Callable[[], float] = time.perf_counter,
        *,
        grammar: str | None = None,
    ) -> None:
        self.engine = engine
        self.route_caller = route_caller
        self.registry = registry
        self.profile = profile
        self.clock = clock
        self.grammar = grammar
        self.template = registry.policy_template(profile)
        self.resolver = registry.resolver(profile)

    def run(
        self,
        question: str,
        overrides: PolicyOverrides | None = None,
        *,
        request_id: str | None = None,
    ) -> AsyncGenerator[EpisodeEvent, None]:
        """The episode's events; the last one is :class:`EpisodeFinished`."""
        settings = resolve_settings(
            self.profile, overrides or PolicyOverrides(), grammar=self.grammar
        )
        episode = _Episode(self, question, settings, request_id or f"ep-{uuid.uuid4().hex}")
        return episode.events()

    async def run_to_end(
        self,
        question: str,
        overrides: PolicyOverrides | None = None,
        *,
        request_id: str | None = None,
    ) -> EpisodeResult:
        """Run the episode without streaming and return its result."""
        result: EpisodeResult | None = None
        events = self.run(question, overrides, request_id=request_id)
        try:
            async for event in events:
                if isinstance(event, EpisodeFinished):
                    result = event.result
        finally:
            await events.aclose()
        if result is None:  # pragma: no cover - events() always ends with EpisodeFinished
            raise RuntimeError("episode ended without a result")
        return result


class _DeadlineExceeded(Exception):
    """The request deadline passed during a wait."""


@dataclass
class _Turn:
    """One policy turn while it is being played."""

    index: int
    final: bool
    text: str = ""
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    policy_cost_usd: float = 0.0
    answer_text: str = ""
    action: Action = NO_ACTION
    written_model: str | None = None
    model: str | None = None
    query: str | None = None
    reply: UpstreamReply | None = None
    upstream_status: str | None = None
    policy_wait_s: float = 0.0
    upstream_wait_s: float = 0.0
    policy_started: float | None = None  # runner clock at the turn's first engine call
    upstream_started: float | None = None
    cached_tokens: int | None = None
    generated: bool = False
    route_started: bool = False
    recorded: bool = False


def _step_action(action: Action) -> StepAction:
    if action.kind is ActionKind.ANSWER:
        return "answer"
    if action.kind is ActionKind.SEARCH:
        return "route"
    return "none" if action.kind is None else "invalid"


def _visible_prefix(text: str) -> str:
    """``text`` up to the end of its first closing action tag (the turn ends there)."""
    ends = [text.find(tag) + len(tag) for tag in (SEARCH_CLOSE, ANSWER_CLOSE) if tag in text]
    return text[: min(ends)] if ends else text


class _Episode:
    """The state of one episode; :meth:`events` plays it."""

    def __init__(
        self, runner: EpisodeRunner, question: str, settings: EpisodeSettings, request_id: str
    ) -> None:
        self.r = runner
        self.question = question
        self.settings = settings
        self.request_id = request_id
        self.limits = runner.profile.limits
        self.ledger = Ledger(policy_pricing=runner.profile.policy.pricing)
        self.context = PolicyContext(
            [],
            max_context_tokens=self.limits.max_context_tokens,
            max_observation_tokens=self.limits.max_observation_tokens,
        )
        self.steps: list[RouteStep] = []
        self.turn: _Turn | None = None
        self.deadline = 0.0
        self.started = 0.0
        self.started_at = 0.0

    async def _wait(self, awaitable: Awaitable[T], kind: Literal["policy", "upstream"]) -> T:
        """Await within the request deadline, charging the time to ``kind``."""
        start = self.r.clock()
        turn = self.turn
        if turn is not None:
            if kind == "policy" and turn.policy_started is None:
                turn.policy_started = start
            elif kind == "upstream" and turn.upstream_started is None:
                turn.upstream_started = start
        scope = asyncio.timeout_at(self.deadline)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise _DeadlineExceeded from None
            raise
        finally:
            elapsed = self.r.clock() - start
            if kind == "policy":
                self.ledger.policy_wait_s += elapsed
                if turn is not None:
                    turn.policy_wait_s += elapsed
            else:
                self.ledger.upstream_wait_s += elapsed
                if turn is not None:
                    turn.upstream_wait_s += elapsed

    async def events(self) -> AsyncGenerator[EpisodeEvent, None]:
        started = self.started = self.r.clock()
        self.started_at = time.time()
        self.deadline = asyncio.get_running_loop().time() + self.settings.deadline_s
        outcome: Outcome = "no_answer"
        answer = ""
        try:
            user_message = fill_policy_prompt(self.r.template, self.question)
            prompt_ids = await self._wait(self.r.engine.chat_prompt_ids(user_message), "policy")
            self.context = PolicyContext(
                prompt_ids,
                max_context_tokens=self.limits.max_context_tokens,
                max_observation_tokens=self.limits.max_observation_tokens,
                prompt_text=user_message,
            )
            for index in range(self.limits.max_routes + 1):
                turn = self.turn = _Turn(index=index, final=index == self.limits.max_routes)
                async with aclosing(self._stream_turn(turn)) as deltas:
                    async for delta in deltas:
                        yield delta
                turn.action = parse_action(turn.text)
                ids = await self._wait(self.r.engine.tokenize(turn.text), "policy")
                self.context.append_turn(turn.text, ids)
                if turn.action.kind is ActionKind.ANSWER:
                    self._record(turn)
                    outcome, answer = "answer", turn.answer_text
                    break
                if turn.action.is_route and not turn.final:
                    async with aclosing(self._route(turn)) as route_events:
                        async for event in route_events:
                            yield event
                else:
                    if turn.action.is_route:
                        self._describe_route(turn)
                        turn.upstream_status = UPSTREAM_NOT_EXECUTED
                    self._record(turn)
        except _DeadlineExceeded:
            outcome = "deadline_exceeded"
            cut = self.turn
            if cut is not None and cut.generated and not cut.recorded:
                if cut.route_started and cut.upstream_status is None:
                    cut.upstream_status = UPSTREAM_DEADLINE
                step = self._record(cut)
                if cut.route_started:
                    yield RouteFinished(step)
        yield EpisodeFinished(self._result(outcome, answer, self.r.clock() - started))

    async def _stream_turn(self, turn: _Turn) -> AsyncGenerator[TextDelta, None]:
        """Generate one turn, yielding its deltas; fills ``turn`` (text, usage, answer)."""
        splitter = AnswerSplitter(self.settings.answer_stops)
        stream = self.r.engine.stream_generate(self.context.engine_prompt(), self.settings.params)
        text, fed = "", 0
        final: GenerationChunk | None = None
        try:
            while final is None:
                try:
                    chunk = await self._wait(anext(stream), "policy")
                except StopAsyncIteration:
                    break
                if chunk.text:
                    text += chunk.text
                    visible = _visible_prefix(text)
                    for delta in splitter.feed(visible[fed:]):
                        yield delta
                    fed = len(visible)
                if chunk.is_final:
                    final = chunk
        finally:
            await aclose(stream)
        if final is None:
            raise EngineError("policy engine stream ended without a final chunk")
        turn.text = cut_turn(text)
        for delta in [*splitter.feed(turn.text[fed:]), *splitter.finish()]:
            yield delta
        turn.answer_text = splitter.answer_text
        turn.finish_reason = final.finish_reason or "stop"
        turn.prompt_tokens = final.prompt_tokens or 0
        turn.completion_tokens = final.completion_tokens or 0
        turn.cached_tokens = final.cached_tokens
        turn.policy_cost_usd = self.ledger.add_policy_turn(
            turn.prompt_tokens, turn.completion_tokens
        )
        turn.generated = True

    def _describe_route(self, turn: _Turn) -> tuple[str, str]:
        """Fill the route fields of ``turn``; returns the written name and the query."""
        written, query = turn.action.model_name, turn.action.query_remainder
        turn.written_model, turn.query = written, query
        turn.model = self.r.resolver.resolve(written)
        return written, query

    async def _route(self, turn: _Turn) -> AsyncGenerator[EpisodeEvent, None]:
        """Execute the turn's route and append its observation."""
        written, query = self._describe_route(turn)
        spec = self.r.registry.model(turn.model) if turn.model is not None else None
        yield RouteStarted(turn.index, written, turn.model, query)
        turn.route_started = True
        self.ledger.add_route(turn.model)
        reply_text: str | None = None
        if spec is None:
            turn.model = None
            turn.upstream_status = UPSTREAM_UNKNOWN_MODEL
        else:
            call = self.r.route_caller.route_call(
                spec, render_upstream_prompt(query), max_tokens=self.limits.upstream_max_tokens
            )
            turn.reply = await self._wait(call, "upstream")
            turn.upstream_status = turn.reply.status
            self.ledger.add_upstream(turn.reply, spec.pricing.output_per_1m)
            if turn.reply.succeeded:
                reply_text = turn.reply.text
        observation = format_observation(reply_text)
        ids = await self._wait(self.r.engine.tokenize(observation), "policy")
        cap = self.limits.max_observation_tokens
        if len(ids) > cap:  # the context keeps the first ``cap`` ids; show their text
            observation = await self._wait(self.r.engine.detokenize(ids[:cap]), "policy")
        self.context.append_observation(observation, ids)
        yield RouteFinished(self._record(turn))

    def _record(self, turn: _Turn) -> RouteStep:
        reply = turn.reply
        upstream_cost = reply.cost_usd if reply is not None else 0.0
        excerpt = reply.text[:REPLY_EXCERPT_CHARS] if reply and reply.text is not None else None
        step = RouteStep(
            index=turn.index,
            think=extract_think(turn.text),
            action=_step_action(turn.action),
            written_model=turn.written_model,
            model=turn.model,
            query=turn.query,
            reply_excerpt=excerpt,
            upstream_status=turn.upstream_status,
            upstream_error=reply.error if reply is not None else None,
            cached=reply is not None and reply.status == "cached",
            policy_prompt_tokens=turn.prompt_tokens,
            policy_completion_tokens=turn.completion_tokens,
            upstream_prompt_tokens=reply.prompt_tokens if reply is not None else 0,
            upstream_completion_tokens=reply.completion_tokens if reply is not None else 0,
            cost_usd=turn.policy_cost_usd + upstream_cost,
            policy_cost_usd=turn.policy_cost_usd,
            policy_latency_ms=turn.policy_wait_s * 1000,
            upstream_latency_ms=turn.upstream_wait_s * 1000,
            started_ms=self._offset_ms(turn.policy_started) or 0.0,
            upstream_started_ms=self._offset_ms(turn.upstream_started),
            cached_tokens=turn.cached_tokens,
            upstream_attempts=reply.attempts if reply is not None else None,
        )
        self.steps.append(step)
        turn.recorded = True
        return step

    def _offset_ms(self, at: float | None) -> float | None:
        return None if at is None else (at - self.started) * 1000

    def _result(self, outcome: Outcome, answer: str, total_s: float) -> EpisodeResult:
        trace = RouterTrace(
            request_id=self.request_id,
            profile=self.r.profile.name,
            policy_model=self.r.profile.policy.model,
            outcome=outcome,
            started_at=self.started_at,
            answer=answer if outcome == "answer" else None,
            steps=list(self.steps),
            totals=self.ledger.totals(total_s),
        )
        ledger = self.ledger
        usage = EpisodeUsage(
            prompt_tokens=ledger.policy_prompt_tokens + ledger.upstream_prompt_tokens,
            completion_tokens=ledger.policy_completion_tokens + ledger.upstream_completion_tokens,
        )
        return EpisodeResult(
            answer_text=answer if outcome == "answer" else "",
            finish_reason="stop" if outcome == "answer" else "length",
            trace=trace,
            context=self.context,
            usage=usage,
        )
