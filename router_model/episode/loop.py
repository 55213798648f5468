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
- Untrusted text never becomes control tokens: the question and every upstream reply
  have the policy tokenizer's special-token strings neutralised before they are
  tokenized (:mod:`router_model.episode.special_tokens`; a documented deviation from
  the reference, which parsed them).
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
- Every token paid for is in :meth:`EpisodeRun.result` whatever ends the episode: a
  failure or a cancellation records the turn or route call it cut off (with estimated
  tokens when the call's usage never arrived) before it propagates.
- Caps (:mod:`router_model.episode.caps`): before each route call, its worst case must fit
  in what is left of ``max_cost_usd`` and ``max_upstream_calls``; a route that does not is
  not executed (``None`` observation, step status ``cost_cap``/``call_cap``).
- With ``engines`` (a replica set), each episode plays on the engine it hands out for the
  episode id, closed at the episode's end; the trace steps say which server served each turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable
from contextlib import aclosing
from typing import TYPE_CHECKING, Literal, TypeVar

from router_model.episode.aio import aclose
from router_model.episode.caps import worst_case_call_usd
from router_model.episode.context import PolicyContext
from router_model.episode.engine import (
    EngineError,
    GenerationChunk,
)
from router_model.episode.events import (
    AnswerDelta,
    AnswerSplitter,
    EpisodeEvent,
    EpisodeFinished,
    ReasoningDelta,
    RouteFinished,
    RouteStarted,
    TextDelta,
)
from router_model.episode.ledger import Ledger
from router_model.episode.result import EpisodeResult
from router_model.episode.settings import EpisodeSettings
from router_model.episode.trace import (
    UPSTREAM_CANCELLED,
    UPSTREAM_DEADLINE,
    UPSTREAM_NOT_EXECUTED,
    UPSTREAM_UNKNOWN_MODEL,
    Outcome,
    RouterTrace,
    RouteStep,
)
from router_model.episode.turns import TurnState, estimated_prompt_tokens, visible_prefix
from router_model.protocol.observation import format_observation
from router_model.protocol.prompt import fill_policy_prompt, render_upstream_prompt
from router_model.protocol.turn import ActionKind, cut_turn, parse_action
from router_model.registry import ModelSpec
from router_model.usage import Usage

T = TypeVar("T")

if TYPE_CHECKING:  # the runner builds runs; a run only reads its runner's parts
    from router_model.episode.runner import EpisodeRunner


class _DeadlineExceeded(Exception):
    """The request deadline passed during a wait."""


class EpisodeRun:
    """One episode: :meth:`events` plays it, :meth:`result` is what it has done and spent."""

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
        self.turn: TurnState | None = None
        self.deadline = 0.0
        self.started_at = time.time()
        self.engine = (
            runner.engine if runner.engines is None else runner.engines.episode_engine(request_id)
        )
        self._t0 = runner.clock()
        self._final: EpisodeResult | None = None

    # ------------------------------------------------------------------ what it has done

    def result(self, outcome: Outcome = "error", error: str | None = None) -> EpisodeResult:
        """The finished episode's result; before the end (a failure or a cancellation ended
        it), what it has done and spent so far, with ``outcome`` and ``error``."""
        if self._final is not None:
            return self._final
        return self._result(outcome, "", error)

    def _offset_ms(self) -> float:
        return (self.r.clock() - self._t0) * 1000

    # ------------------------------------------------------------------ playing it

    async def _wait(self, awaitable: Awaitable[T], kind: Literal["policy", "upstream"]) -> T:
        """Await within the request deadline, charging the time to ``kind``."""
        start = self.r.clock()
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
            turn = self.turn
            if kind == "policy":
                self.ledger.policy_wait_s += elapsed
                if turn is not None:
                    turn.policy_wait_s += elapsed
            else:
                self.ledger.upstream_wait_s += elapsed
                if turn is not None:
                    turn.upstream_wait_s += elapsed

    async def events(self) -> AsyncGenerator[EpisodeEvent, None]:
        self.deadline = asyncio.get_running_loop().time() + self.settings.deadline_s
        outcome: Outcome = "no_answer"
        answer = ""
        try:
            question = await self._wait(self.r.guard.neutralize(self.question), "policy")
            user_message = fill_policy_prompt(self.r.template, question)
            prompt_ids = await self._wait(self.engine.chat_prompt_ids(user_message), "policy")
            self.context = PolicyContext(
                prompt_ids,
                max_context_tokens=self.limits.max_context_tokens,
                max_observation_tokens=self.limits.max_observation_tokens,
                prompt_text=user_message,
            )
            for index in range(self.limits.max_routes + 1):
                turn = self.turn = TurnState(
                    index=index, final=index == self.limits.max_routes, started_ms=self._offset_ms()
                )
                async with aclosing(self._stream_turn(turn)) as deltas:
                    async for delta in deltas:
                        yield delta
                turn.action = parse_action(turn.text)
                ids = await self._wait(self.engine.tokenize(turn.text), "policy")
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
            step = self._record_cut_off(UPSTREAM_DEADLINE)
            if step is not None and self.turn is not None and self.turn.route_started:
                yield RouteFinished(step)
        except BaseException:
            # a failure or a cancellation: keep what the cut-off call had spent, then go on
            self._record_cut_off(UPSTREAM_CANCELLED)
            raise
        finally:
            if self.engine is not self.r.engine:
                await self.engine.aclose()  # the episode's own engine (its replica slot)
        self._final = self._result(outcome, answer)
        yield EpisodeFinished(self._final)

    async def _stream_turn(self, turn: TurnState) -> AsyncGenerator[TextDelta, None]:
        """Generate one turn, yielding its deltas; fills ``turn`` (text, usage, answer).

        Reasoning deltas carry every visible character of the turn (what enters the
        context); answer deltas carry the answer block's content once more."""
        splitter = AnswerSplitter(self.settings.answer_stops)
        prompt = self.context.engine_prompt()
        stream = self.engine.stream_generate(prompt, self.settings.turn_params(turn.final))
        text, fed, chunks = "", 0, 0
        final: GenerationChunk | None = None
        try:
            while final is None:
                try:
                    chunk = await self._wait(anext(stream), "policy")
                except StopAsyncIteration:
                    break
                if chunk.text:
                    chunks += 1
                    text += chunk.text
                    visible = visible_prefix(text)
                    for delta in self._deltas(splitter.feed(visible[fed:]), visible[fed:]):
                        yield delta
                    fed = len(visible)
                if chunk.is_final:
                    final = chunk
        finally:
            await aclose(stream)
            if final is None:  # cut off: the prompt was sent and the chunks were generated
                turn.prompt_tokens, turn.completion_tokens = len(prompt), chunks
                turn.usage_estimated = True
                turn.policy_cost_usd = self.ledger.add_policy_turn(len(prompt), chunks)
                turn.text = cut_turn(text)
        if final is None:
            raise EngineError("policy engine stream ended without a final chunk")
        turn.text = cut_turn(text)
        rest = turn.text[fed:]
        for delta in self._deltas([*splitter.feed(rest), *splitter.finish()], rest):
            yield delta
        turn.answer_text = splitter.answer_text
        turn.finish_reason = final.finish_reason or "stop"
        turn.prompt_tokens = final.prompt_tokens or 0
        turn.completion_tokens = final.completion_tokens or 0
        turn.cached_tokens = final.cached_tokens
        turn.replica, turn.failover_from = final.replica, final.failover_from
        turn.policy_cost_usd = self.ledger.add_policy_turn(
            turn.prompt_tokens, turn.completion_tokens
        )
        turn.generated = True

    @staticmethod
    def _deltas(split: list[TextDelta], text: str) -> list[TextDelta]:
        """The text as one reasoning delta, then the answer deltas the splitter found in it."""
        answers: list[TextDelta] = [d for d in split if isinstance(d, AnswerDelta)]
        return [ReasoningDelta(text), *answers] if text else answers

    def _describe_route(self, turn: TurnState) -> tuple[str, str]:
        """Fill the route fields of ``turn``; returns the written name and the query."""
        written, query = turn.action.model_name, turn.action.query_remainder
        turn.written_model, turn.query = written, query
        turn.model = self.r.resolver.resolve(written)
        return written, query

    async def _route(self, turn: TurnState) -> AsyncGenerator[EpisodeEvent, None]:
        """Execute the turn's route and append its observation."""
        written, query = self._describe_route(turn)
        spec = self.r.registry.model(turn.model) if turn.model is not None else None
        yield RouteStarted(turn.index, written, turn.model, query)
        turn.route_started = True
        reply_text: str | None = None
        prompt = render_upstream_prompt(query)
        refused = None if spec is None else self._cap_refusal(spec, prompt)
        self.ledger.add_route(None if refused else turn.model)
        if spec is None:
            turn.model = None
            turn.upstream_status = UPSTREAM_UNKNOWN_MODEL
        elif refused is not None:
            turn.upstream_status = refused  # not executed: the policy gets None
        else:
            reply_text = await self._call(turn, spec, prompt)
        if reply_text is not None:
            reply_text = await self._wait(self.r.guard.neutralize(reply_text), "policy")
        observation = format_observation(reply_text)
        ids = await self._wait(self.engine.tokenize(observation), "policy")
        cap = self.limits.max_observation_tokens
        if len(ids) > cap:  # the context keeps the first ``cap`` ids; show their text
            observation = await self._wait(self.engine.detokenize(ids[:cap]), "policy")
        piece = self.context.append_observation(observation, ids)
        yield RouteFinished(self._record(turn), piece.text)

    def _cap_refusal(self, spec: ModelSpec, prompt: str) -> str | None:
        """The cap this call's worst case would pass (``cost_cap``/``call_cap``), or None."""
        worst = worst_case_call_usd(spec.pricing, prompt, self.limits.upstream_max_tokens)
        return self.settings.caps.refusal(
            spent_usd=self.ledger.cost_usd,
            calls_made=self.ledger.upstream_calls,
            worst_case_usd=worst,
        )

    async def _call(self, turn: TurnState, spec: ModelSpec, prompt: str) -> str | None:
        """Call the upstream; its reply text, or None when the call failed."""
        turn.upstream_started_ms = self._offset_ms()
        turn.upstream_prompt_tokens = estimated_prompt_tokens(prompt)  # until it says
        turn.usage_estimated = True
        call = self.r.route_caller.route_call(
            spec, prompt, max_tokens=self.limits.upstream_max_tokens
        )
        reply = turn.reply = await self._wait(call, "upstream")
        turn.upstream_status = reply.status
        turn.usage_estimated = False
        turn.upstream_prompt_tokens = reply.prompt_tokens
        turn.upstream_completion_tokens = reply.completion_tokens
        turn.upstream_cost_usd = reply.cost_usd
        self.ledger.add_upstream(
            reply.prompt_tokens,
            reply.completion_tokens,
            reply.cost_usd,
            spec.pricing_of().output_per_1m,
            attempts=reply.attempts,
        )
        return reply.text if reply.succeeded else None

    def _record_cut_off(self, status: str) -> RouteStep | None:
        """Record the turn a deadline, failure or cancellation cut off (if it had started):
        an upstream call in flight counts its prompt (estimated: it was sent, so it may be
        billed), at the model's prices."""
        turn = self.turn
        if turn is None or turn.recorded or not (turn.generated or turn.usage_estimated):
            return None
        if turn.upstream_started_ms is not None and turn.reply is None:
            spec = self.r.registry.model(turn.model) if turn.model is not None else None
            if spec is not None:
                turn.upstream_cost_usd = spec.pricing_of().cost_usd(turn.upstream_prompt_tokens, 0)
                self.ledger.add_upstream(
                    turn.upstream_prompt_tokens, 0, turn.upstream_cost_usd, 0.0
                )
            turn.upstream_status = status
        elif turn.route_started and turn.upstream_status is None:
            turn.upstream_status = status
        return self._record(turn)

    def _record(self, turn: TurnState) -> RouteStep:
        step = turn.step()
        self.steps.append(step)
        turn.recorded = True
        return step

    def _result(self, outcome: Outcome, answer: str, error: str | None = None) -> EpisodeResult:
        total_s = self.r.clock() - self._t0
        profile = self.r.profile
        trace = RouterTrace(
            request_id=self.request_id,
            mode="episode",
            profile=profile.name,
            policy_model=profile.policy.model,
            outcome=outcome,
            error=error,
            started_at=self.started_at,
            answer=answer if outcome == "answer" else None,
            steps=list(self.steps),
            totals=self.ledger.totals(total_s),
        )
        ledger = self.ledger
        usage = Usage(
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
