"""Circuit breaker transitions, driven by a fake clock."""

from __future__ import annotations

from server.upstream.breaker import BreakerPolicy, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


POLICY = BreakerPolicy(failures=3, error_ratio=0.5, window_s=10.0, min_calls=6, cooldown_s=5.0)


def breaker(policy: BreakerPolicy = POLICY) -> tuple[CircuitBreaker, Clock, list[BreakerState]]:
    clock = Clock()
    changes: list[BreakerState] = []
    return CircuitBreaker(policy, clock, changes.append), clock, changes


def test_consecutive_failures_open_it() -> None:
    b, _, changes = breaker()
    for _ in range(2):
        assert b.begin()
        b.failure()
    assert b.state == "closed"
    b.success()  # a success in between starts the count again
    b.failure()
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open"
    assert changes == ["open"]
    assert not b.available()
    assert not b.begin()


def test_an_error_ratio_over_the_window_opens_it() -> None:
    b, _, _ = breaker(BreakerPolicy(failures=100, error_ratio=0.5, window_s=10, min_calls=6))
    for _ in range(3):
        b.success()
        b.failure()  # alternating: never 2 failures in a row
    assert b.state == "open"  # 3 failures of 6 calls


def test_the_ratio_needs_enough_calls_and_forgets_old_ones() -> None:
    b, clock, _ = breaker(BreakerPolicy(failures=100, error_ratio=0.5, window_s=10, min_calls=6))
    b.failure()
    b.failure()
    b.success()
    assert b.state == "closed"  # 2 of 3: too few calls to judge
    clock.now += 30  # the window has passed: those calls are forgotten
    for _ in range(4):
        b.success()
    b.failure()
    b.failure()
    b.failure()
    assert b.state == "closed"  # 3 of 7 in the window
    b.failure()
    assert b.state == "open"  # 4 of 8


def test_after_the_cooldown_exactly_one_probe_goes_through() -> None:
    b, clock, changes = breaker()
    for _ in range(3):
        b.failure()
    assert b.retry_after_s() == 5.0
    clock.now += 4.9
    assert not b.available()
    assert b.retry_after_s() > 0
    clock.now += 0.2
    assert b.retry_after_s() == 0.0
    assert b.available()
    assert b.begin()  # the probe
    assert b.state == "half_open"
    assert not b.available()
    assert not b.begin()  # no second call while the probe is out
    b.success()
    assert b.state == "closed"
    assert b.begin()
    assert changes == ["open", "half_open", "closed"]


def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    b, clock, changes = breaker()
    for _ in range(3):
        b.failure()
    clock.now += 5
    assert b.begin()
    b.failure()
    assert b.state == "open"
    assert b.retry_after_s() == 5.0
    assert changes == ["open", "half_open", "open"]


def test_an_abandoned_probe_lets_the_next_call_probe() -> None:
    b, clock, _ = breaker()
    for _ in range(3):
        b.failure()
    clock.now += 5
    assert b.begin()
    b.abandoned()  # the probing caller was cancelled: no outcome
    assert b.state == "half_open"
    assert b.begin()


def test_late_outcomes_of_calls_started_before_it_opened_change_nothing() -> None:
    b, clock, _ = breaker()
    for _ in range(3):
        b.failure()
    b.success()
    b.failure()
    assert b.state == "open"
    assert b.retry_after_s() == 5.0  # the cooldown was not restarted
    clock.now += 5
    assert b.available()
