"""What the span builder needs to know about one finished request, besides its trace."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from router_model.episode.trace import RouterTrace
from router_model.registry import Registry
from server.telemetry.context import RequestTraceContext

Mode = Literal["episode", "passthrough"]


@dataclass(frozen=True)
class ModelInfo:
    """A registry model as a GenAI backend sees it: the id sent upstream and its provider
    (the registry endpoint's name, e.g. ``nvidia``)."""

    upstream_model: str
    provider: str


def model_catalog(registry: Registry) -> dict[str, ModelInfo]:
    """Registry name → :class:`ModelInfo` of every model (build once per registry version);
    a model with several deployments is described by its first."""
    return {
        m.name: ModelInfo(m.deployments[0].upstream_model, m.deployments[0].endpoint)
        for m in registry.models
    }


@dataclass(frozen=True)
class UpstreamCall:
    """A passthrough request's upstream call (episode calls come from the trace's steps); its
    attributes go on the request's span.

    ``status`` is the pool's (``ok``, ``cached``, ``timeout``, ``http_error``, ...);
    ``attempts`` counts retries too. ``reply_text`` goes into a span event only when content
    capture is on.
    """

    model: str
    status: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    attempts: int = 1
    deployment: str | None = None
    error: str | None = None
    response_model: str | None = None
    finish_reason: str | None = None
    reply_text: str | None = None


@dataclass(frozen=True)
class RequestFacts:
    """One finished request: how it went and, for an episode, its trace.

    ``started_at`` is the request's arrival (Unix seconds) and ``duration_ms`` its length to
    the last byte. ``profile`` names the router profile (episodes), ``model`` the registry
    model (passthrough). ``error_type`` is the gateway's error code for a failed request.
    ``question`` (the text the policy was asked, or the last user message) goes into a span
    event only when content capture is on. ``models`` maps registry names to upstream ids and
    providers (:func:`model_catalog`); a name missing from it is reported as it is.
    """

    context: RequestTraceContext
    request_id: str
    mode: Mode
    status_code: int
    started_at: float
    duration_ms: float
    key_id: str | None = None
    profile: str | None = None
    model: str | None = None
    trace: RouterTrace | None = None
    upstream: UpstreamCall | None = None
    error_type: str | None = None
    stream: bool = False
    time_to_first_token_ms: float | None = None
    policy_provider: str | None = None
    question: str | None = None
    models: Mapping[str, ModelInfo] = field(default_factory=dict)
