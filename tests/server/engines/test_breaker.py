"""The per-replica circuit breaker, on a fake clock."""

from __future__ import annotations

import pytest

from server.engines.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_consecutive_failures_open_it_and_a_success_resets_the_count(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=5.0, clock=clock)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"
    assert breaker.available()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.available()
    assert breaker.opened_at == 100.0


def test_after_the_cooldown_one_probe_goes_through_and_its_success_closes_it(clock: Clock) -> None:
    breaker = CircuitBreaker(cooldown_s=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 4.9
    assert breaker.state == "open"
    clock.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.available()
    assert breaker.call_started() is True  # the probe
    assert not breaker.available()  # one probe at a time
    assert breaker.call_started() is False
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.available()


def test_a_failed_probe_opens_it_for_a_new_cooldown(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=5.0, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 6
    assert breaker.call_started()
    breaker.record_failure()  # one failure is enough in half-open
    assert breaker.state == "open"
    assert breaker.opened_at == clock.now
    assert breaker.opened_count == 2
    clock.now += 5
    assert breaker.state == "half_open"


def test_failures_while_open_keep_the_cooldown(clock: Clock) -> None:
    breaker = CircuitBreaker(cooldown_s=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 3
    breaker.record_failure()  # a call that started before it opened, failing late
    assert breaker.opened_at == 100.0
    clock.now += 2
    assert breaker.state == "half_open"


def test_an_abandoned_probe_lets_the_next_call_probe(clock: Clock) -> None:
    breaker = CircuitBreaker(cooldown_s=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.call_started()
    breaker.probe_abandoned()
    assert breaker.available()
    assert breaker.call_started()


def test_the_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CircuitBreaker(failure_threshold=0)
