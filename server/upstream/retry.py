"""Which failed attempts are retried, and after how long.

Retried by default: only what the upstream cannot have processed, so that one routed call is
never billed twice: a connection that could not be made (refused, DNS, TLS, connect timeout) or
a request that could not be written; 429 (quota: the request was refused, not processed); 503
only with ``Retry-After`` (the server says it refused the request and when to come back). Not
retried: a reset, a disconnect or a read timeout after the request was written, other 5xx,
any other 4xx, a garbage 2xx. A model with ``retry: {unsafe: true}`` also retries the failures
that may have been processed (not 4xx, not garbage). At most ``max_retries`` retries; a
``Retry-After`` longer than ``backoff_cap_s`` ends them (the 429/503 is returned).
"""

from __future__ import annotations

from server.upstream.failures import CallFailure
from server.upstream.settings import UpstreamSettings


def retryable(failure: CallFailure, *, unsafe: bool) -> bool:
    """Whether another attempt may be made after ``failure`` (``unsafe``: the model opted in
    to retrying what may have been processed)."""
    if failure.status == "http_error":
        status = failure.http_status or 0
        if status == 429:
            return True
        if status == 503 and failure.retry_after_s is not None:
            return True
        return unsafe and status >= 500
    if failure.status == "bad_response":
        return False
    if failure.status == "unavailable":
        return False  # every deployment is open: nothing to retry on
    return not failure.sent or unsafe


def retry_delay(
    failure: CallFailure,
    attempt: int,
    settings: UpstreamSettings,
    rand: float,
    *,
    unsafe: bool = False,
) -> float | None:
    """The sleep before the next attempt after attempt number ``attempt`` (1-based) failed,
    or ``None`` when there is none to make. ``rand`` is uniform in [0, 1) (the jitter)."""
    if attempt > settings.max_retries or not retryable(failure, unsafe=unsafe):
        return None
    wanted = failure.retry_after_s
    if wanted is None:
        return settings.backoff_s(attempt, rand)
    if wanted > settings.backoff_cap_s:
        return None  # it asked for longer than we may wait
    return wanted
