"""One episode's policy engine over a replica set: pinned to one replica, failing over.

The episode loop sees a plain :class:`~router_model.episode.engine.PolicyEngine`. Behind it:

- At the first call the episode is pinned to the replica :meth:`ReplicaSet.choose` picks, and
  counts as in flight there until :meth:`EpisodeEngine.aclose` (the loop closes it when the
  episode ends). Every later call goes to the same replica while it is available.
- A call that fails with ``EngineUnavailable`` (connect error, 5xx, timeout) is recorded in
  the replica's breaker and sent again to another replica, each replica tried at most once per
  call; when every one has failed, the error propagates. The episode stays on the replica that
  answered. The prompt is token ids, so the new replica continues the same context exactly;
  only its prefix cache is cold.
- A streamed turn cut off after some text continues on the new replica from the prompt ids
  plus the ids of the text already generated (tokenized by the new replica, as the loop
  tokenizes every turn's text), with ``max_tokens`` reduced by them; the turn's usage adds the
  cut-off attempt's prompt and text.
- The final chunk of each turn names the replica that served it and the replicas that failed
  the episode since the previous turn (moving away from a replica another episode found
  broken counts too); the loop copies both into the trace step.

Errors of the request (``EngineError`` that is not ``EngineUnavailable``: a 4xx, a malformed
reply) are not retried elsewhere: every replica would answer the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, TypeVar

from router_model.episode.aio import aclose
from router_model.episode.engine import (
    EngineError,
    EngineUnavailable,
    Generation,
    GenerationChunk,
    GenerationParams,
    PolicyEngine,
)

if TYPE_CHECKING:
    from server.engines.replicas import Replica, ReplicaSet

T = TypeVar("T")


class EpisodeEngine:
    """See the module docstring. Not shared between episodes."""

    def __init__(self, replicas: ReplicaSet, headers: Mapping[str, str]) -> None:
        self._set = replicas
        self._headers = dict(headers)
        self._replica: Replica | None = None
        self._engine: PolicyEngine | None = None
        self._failed: list[str] = []  # since the last final chunk
        self.failovers = 0

    @property
    def replica(self) -> str | None:
        """The replica the episode is on (None before its first call)."""
        return None if self._replica is None else self._replica.name

    # ------------------------------------------------------------------ selection

    def _select(
        self, tried: set[str], errors: list[EngineUnavailable]
    ) -> tuple[Replica, PolicyEngine]:
        current = self._replica
        affinity = self._set.selection == "affinity"
        if current is not None and affinity and current.name not in tried and current.available:
            assert self._engine is not None
            return current, self._engine
        replica = self._set.choose(exclude=tried)
        if replica is None:
            raise _every_replica_failed(errors)
        moved = current is not None and replica is not current and affinity
        if moved and current is not None and current.name not in tried:
            self._note_failover(current.name)  # another episode found it broken: moving counts
        return replica, self._pin(replica)

    def _pin(self, replica: Replica) -> PolicyEngine:
        if replica is not self._replica or self._engine is None:
            if self._replica is not None:
                self._replica.in_flight -= 1
            replica.in_flight += 1
            self._replica = replica
            engine = replica.engine
            self._engine = engine.with_headers(self._headers) if self._headers else engine
        return self._engine

    def _note_failover(self, name: str) -> None:
        if name not in self._failed:
            self._failed.append(name)
        self.failovers += 1

    def _failure(
        self,
        replica: Replica,
        exc: EngineUnavailable,
        tried: set[str],
        errors: list[EngineUnavailable],
    ) -> None:
        replica.breaker.record_failure()
        tried.add(replica.name)
        errors.append(exc)
        self._note_failover(replica.name)

    def _served(self, chunk: GenerationChunk, replica: Replica) -> GenerationChunk:
        failed, self._failed = tuple(self._failed), []
        return dataclasses.replace(chunk, replica=replica.name, failover_from=failed)

    # ------------------------------------------------------------------ calls

    async def _call(self, operation: Callable[[PolicyEngine], Awaitable[T]]) -> T:
        tried: set[str] = set()
        errors: list[EngineUnavailable] = []
        while True:
            replica, engine = self._select(tried, errors)
            probe = replica.breaker.call_started()
            try:
                result = await operation(engine)
            except EngineUnavailable as exc:
                self._failure(replica, exc, tried, errors)
                continue
            except EngineError:
                replica.breaker.record_success()  # it answered: the request is at fault
                raise
            except BaseException:
                if probe:
                    replica.breaker.probe_abandoned()
                raise
            replica.breaker.record_success()
            return result

    async def chat_prompt_ids(self, user_message: str) -> list[int]:
        return await self._call(lambda engine: engine.chat_prompt_ids(user_message))

    async def tokenize(self, text: str) -> list[int]:
        return await self._call(lambda engine: engine.tokenize(text))

    async def detokenize(self, ids: Sequence[int]) -> str:
        return await self._call(lambda engine: engine.detokenize(ids))

    async def generate(self, prompt_ids: Sequence[int], params: GenerationParams) -> Generation:
        generation = await self._call(lambda engine: engine.generate(prompt_ids, params))
        failed, self._failed = tuple(self._failed), []
        return dataclasses.replace(generation, replica=self.replica, failover_from=failed)

    async def stream_generate(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> AsyncGenerator[GenerationChunk, None]:
        tried: set[str] = set()
        errors: list[EngineUnavailable] = []
        ids = list(prompt_ids)
        pending = ""  # text a failed replica generated, for the next one to continue from
        cut_prompt = made = 0  # tokens of cut-off attempts: prompt sent, text generated
        attempt_params = params
        while True:
            replica, engine = self._select(tried, errors)
            probe = replica.breaker.call_started()
            text = ""
            try:
                if pending:
                    continued = await engine.tokenize(pending)
                    ids, made, pending = ids + continued, made + len(continued), ""
                    left = params.max_tokens - made
                    if left < 1:  # the cut-off attempt used the whole budget
                        replica.breaker.record_success()
                        yield self._served(_cut_off_final("length", cut_prompt, made), replica)
                        return
                    attempt_params = dataclasses.replace(params, max_tokens=left)
                sent = len(ids)
                async with aclosing(_stream(engine, ids, attempt_params)) as chunks:
                    async for chunk in chunks:
                        if chunk.is_final:
                            replica.breaker.record_success()
                            yield self._served(_add_usage(chunk, cut_prompt, made), replica)
                            return
                        text += chunk.text
                        yield chunk
                return  # ended without a final chunk: the loop reports it
            except EngineUnavailable as exc:
                self._failure(replica, exc, tried, errors)
                if text:
                    cut_prompt += sent
                    pending = text
                    if any(stop in text for stop in params.stop):  # the turn had ended
                        yield self._served(_cut_off_final("stop", cut_prompt, made), replica)
                        return
            except BaseException:
                if probe:
                    replica.breaker.probe_abandoned()
                raise

    async def ready(self) -> bool:
        return await self._set.ready()

    async def aclose(self) -> None:
        """Leave the replica (the episode is no longer in flight there); idempotent."""
        if self._replica is not None:
            self._replica.in_flight -= 1
            self._replica = None
            self._engine = None


async def _stream(
    engine: PolicyEngine, ids: Sequence[int], params: GenerationParams
) -> AsyncGenerator[GenerationChunk, None]:
    """The engine's stream as a generator that closes it (its HTTP stream) when closed."""
    stream = engine.stream_generate(ids, params)
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await aclose(stream)


def _add_usage(
    chunk: GenerationChunk, prompt_tokens: int, completion_tokens: int
) -> GenerationChunk:
    if not (prompt_tokens or completion_tokens):
        return chunk
    return dataclasses.replace(
        chunk,
        prompt_tokens=(chunk.prompt_tokens or 0) + prompt_tokens,
        completion_tokens=(chunk.completion_tokens or 0) + completion_tokens,
    )


def _cut_off_final(reason: str, prompt_tokens: int, completion_tokens: int) -> GenerationChunk:
    return GenerationChunk(
        "",
        finish_reason="length" if reason == "length" else "stop",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def _every_replica_failed(errors: list[EngineUnavailable]) -> EngineUnavailable:
    if len(errors) == 1:
        return errors[0]
    detail = "; ".join(str(error) for error in errors)
    return EngineUnavailable(
        f"every replica of the policy engine failed: {detail}",
        timed_out=bool(errors) and all(error.timed_out for error in errors),
    )
