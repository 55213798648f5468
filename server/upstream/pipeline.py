"""THE request pipeline of every upstream call (``route_call``, ``chat``, ``chat_stream``):
pick a deployment, POST, classify, retry (safely, see :mod:`.retry`) until a 2xx response
whose body is still to be read.

Each attempt holds one slot of its deployment's connection semaphore and counts as in flight
there until the response is closed; its outcome feeds the deployment's circuit breaker (a
2xx or a 4xx: success; no answer, a 5xx: failure; cancelled: neither). A retry goes to a
deployment not tried yet when there is one, at once (the backoff and any ``Retry-After`` are
for the server that failed); otherwise to the same one after the backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from router_model.registry import Deployment, Endpoint, ModelSpec, Registry
from server.upstream.deployments import Deployments, DeploymentSlot
from server.upstream.failures import CallFailure, http_failure, transport_failure
from server.upstream.response import UpstreamResponse
from server.upstream.retry import retry_delay
from server.upstream.sender import Sender
from server.upstream.settings import UpstreamSettings

logger = logging.getLogger("router_r1.upstream")


@dataclass
class Progress:
    """What the attempts so far came to (read by the caller when its deadline fires)."""

    attempts: int = 0
    last: CallFailure | None = None
    deployment: str | None = None


class Failed(Exception):
    """Out of attempts: ``failure`` is the last one's."""

    def __init__(self, failure: CallFailure, attempts: int, deployment: str | None) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.attempts = attempts
        self.deployment = deployment


@dataclass
class Opened:
    """A 2xx response, headers read; ``release`` frees its deployment slot (idempotent)."""

    response: UpstreamResponse
    release: Callable[[], None]
    attempts: int
    deployment: Deployment

    async def close(self) -> None:
        try:
            await self.response.aclose()
        finally:
            self.release()


def _occupy(slot: DeploymentSlot, semaphore: asyncio.Semaphore) -> Callable[[], None]:
    """Count the attempt in flight on ``slot`` until the returned release is called once."""
    slot.in_flight += 1
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            slot.in_flight -= 1
            semaphore.release()

    return release


class Pipeline:
    """See the module docstring."""

    def __init__(
        self,
        settings: UpstreamSettings,
        sender: Sender,
        deployments: Deployments,
        registry_provider: Callable[[], Registry],
        rand: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._sender = sender
        self._deployments = deployments
        self._registry_provider = registry_provider
        self._random = rand or random.Random()

    async def open(
        self,
        model: ModelSpec,
        encode: Callable[[Deployment], bytes],
        stream: bool,
        deadline: float | None,
        progress: Progress,
    ) -> Opened:
        """POST ``encode(deployment)`` until a 2xx response (see the module docstring);
        raises :class:`Failed` when out of attempts. ``deadline`` (event-loop time): no retry
        whose sleep would reach it."""
        settings = self._settings
        loop = asyncio.get_running_loop()
        tried: set[str] = set()
        while True:
            slot = self._deployments.choose(model, tried)
            if slot is None and progress.last is not None:
                # the failures so far opened the breakers: the last one is the reason
                raise Failed(progress.last, progress.attempts, progress.deployment)
            if slot is None:
                wait = self._deployments.retry_after_s(model)
                failure = CallFailure(
                    "unavailable",
                    f"every deployment of {model.name} is failing (circuit breaker open); "
                    f"next try in {wait:.0f} s",
                    sent=False,
                    retry_after_s=wait,
                )
                raise Failed(failure, progress.attempts, progress.deployment)
            progress.attempts += 1
            progress.deployment = slot.name
            tried.add(slot.name)
            endpoint = self.endpoint_of(slot.deployment)
            if endpoint is None:
                failure = CallFailure(
                    "connect_error",
                    f"endpoint {slot.deployment.endpoint!r} of model {model.name!r} is not in "
                    f"the registry",
                    sent=False,
                )
                raise Failed(failure, progress.attempts, slot.name)
            outcome = await self._attempt(slot, endpoint, encode, stream, progress.attempts)
            if isinstance(outcome, Opened):
                return outcome
            failure = progress.last = outcome
            delay = retry_delay(
                failure,
                progress.attempts,
                settings,
                self._random.random(),
                unsafe=model.retry.unsafe,
            )
            if delay is None:
                raise Failed(failure, progress.attempts, slot.name)
            if self._deployments.has_other(model, tried):
                delay = 0.0  # another deployment: no need to wait for this one
            if deadline is not None and loop.time() + delay >= deadline:
                raise Failed(failure, progress.attempts, slot.name)  # it could not finish
            logger.debug(
                "upstream %s/%s attempt %d failed (%s); retrying in %.3f s",
                model.name,
                slot.name,
                progress.attempts,
                failure.message,
                delay,
            )
            if delay > 0:
                await asyncio.sleep(delay)

    async def _attempt(
        self,
        slot: DeploymentSlot,
        endpoint: Endpoint,
        encode: Callable[[Deployment], bytes],
        stream: bool,
        attempt: int,
    ) -> Opened | CallFailure:
        sender, breaker = self._sender, slot.breaker
        breaker.begin()  # ``choose`` saw it available: the call (or the probe) is ours
        semaphore = slot.bounded(self._settings.model_limit(endpoint))
        release = _occupy(slot, semaphore)
        try:
            await semaphore.acquire()
        except BaseException:
            slot.in_flight -= 1
            breaker.abandoned()
            raise
        try:
            response = await sender.send(
                endpoint,
                encode(slot.deployment),
                sender.headers(endpoint, stream),
                sender.timeouts(endpoint, stream),
            )
        except Exception as exc:
            release()
            failure = transport_failure(exc)
        except BaseException:
            release()
            breaker.abandoned()
            raise
        else:
            status = response.status_code
            if 200 <= status < 300:
                breaker.success()
                return Opened(response, release, attempt, slot.deployment)
            try:
                raw = await response.aread()
            except httpx.HTTPError:
                raw = b""
            except BaseException:
                breaker.abandoned()
                raise
            finally:
                try:
                    await response.aclose()
                finally:
                    release()
            failure = http_failure(status, raw, response.headers)
        if failure.counts_against_deployment:
            breaker.failure()
        else:
            breaker.success()
        return failure

    def endpoint_of(self, deployment: Deployment) -> Endpoint | None:
        """The deployment's endpoint in the current registry (None: not there any more)."""
        try:
            return self._registry_provider().endpoint(deployment.endpoint)
        except KeyError:
            return None
