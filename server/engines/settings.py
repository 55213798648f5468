"""How the gateway talks to policy engines and their replicas: ``ROUTER_R1_ENGINE_*``.

A registry endpoint's own ``connect_timeout_s``/``read_timeout_s`` bound each engine request;
these are the shared client's defaults and its connection pool, the session header, and the
health of replicas (:mod:`server.engines.replicas`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

PositiveFloat = Annotated[float, Field(gt=0)]


class EngineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    connect_timeout_s: PositiveFloat = 5.0
    """Connect timeout of every policy engine call."""
    read_timeout_s: PositiveFloat = 120.0
    """Each wait for bytes from a policy engine (a long prefill included)."""
    max_connections: Annotated[int, Field(gt=0)] = 256
    """Concurrent connections to the policy engines."""
    max_keepalive_connections: Annotated[int, Field(gt=0)] = 64
    """Idle engine connections kept for reuse."""
    keepalive_expiry_s: PositiveFloat = 4.0
    """How long an idle engine connection is kept for reuse: under the engines' own idle
    timeout (llama-server's HTTP library and vLLM's uvicorn close an idle connection after
    5 s; one reused just as the server closes it fails, "Server disconnected")."""
    session_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{0,64}$")] = (
        "x-session-id"
    )
    """Sent with the episode id on every engine request of an episode, for a prefix-aware router
    in front of the engines (vLLM production-stack: ``--routing-logic session --session-key``
    with this name); a profile's ``policy.session_header`` overrides it; empty = none."""
    replica_selection: Literal["affinity", "round_robin"] = "affinity"
    """``affinity``: an episode stays on one replica (fewest episodes in flight at its start);
    ``round_robin``: every call to the next replica (no affinity: for comparisons only)."""
    breaker_failure_threshold: Annotated[int, Field(ge=1)] = 1
    """Consecutive failures (connect error, 5xx, timeout) that open a replica's breaker."""
    breaker_cooldown_s: PositiveFloat = 5.0
    """How long an open breaker keeps new calls off a replica before one half-open probe."""
    health_interval_s: Annotated[float, Field(ge=0)] = 5.0
    """How often every replica's ``/health`` is polled (0: only by ``/ready``)."""
