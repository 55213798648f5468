"""The OpenTelemetry exporter of request outcomes: each closed request's spans, built from
its one :class:`~server.lifecycle.outcome.RequestOutcome` after it was served.

An episode's spans come from its trace (one per policy turn, one per upstream call); a
passthrough's upstream call (the last one tried, when fallbacks were) goes on the request
span. Model names are mapped to upstream ids and providers once per registry version.
"""

from __future__ import annotations

from collections.abc import Callable

from router_model.episode.trace import RouterTrace
from router_model.registry import Registry
from server.lifecycle.outcome import RequestOutcome
from server.metrics.metrics import NONE, PASSTHROUGH
from server.telemetry import ModelInfo, RequestFacts, TraceExporter, UpstreamCall, model_catalog
from server.telemetry.propagation import ActiveTrace


class SpanExport:
    """An ``OutcomeExporter`` (``server.lifecycle.recorder``) handing spans to ``exporter``."""

    def __init__(self, exporter: TraceExporter, registry: Callable[[], Registry]) -> None:
        self._exporter = exporter
        self._registry = registry
        self._catalog: tuple[Registry, dict[str, ModelInfo]] | None = None

    def export(self, outcome: RequestOutcome) -> None:
        active = outcome.telemetry
        if active is None or not active.context.sampled:
            return
        self._exporter.export(self.facts(outcome, active))

    def models(self) -> tuple[Registry, dict[str, ModelInfo]]:
        registry = self._registry()
        if self._catalog is None or self._catalog[0] is not registry:
            self._catalog = (registry, model_catalog(registry))
        return self._catalog

    def facts(self, outcome: RequestOutcome, active: ActiveTrace) -> RequestFacts:
        registry, models = self.models()
        trace = outcome.trace
        error = outcome.error
        passthrough = outcome.profile == PASSTHROUGH or (
            trace is not None and trace.mode == "passthrough"
        )
        profile = None if passthrough or outcome.profile == NONE else outcome.profile
        policy_provider = None
        if profile is not None:
            spec = registry.profile(profile)
            policy_provider = None if spec is None else spec.policy.engine
        return RequestFacts(
            context=active.context,
            request_id=outcome.request_id,
            mode="passthrough" if passthrough else "episode",
            status_code=outcome.status,
            started_at=outcome.started_at,
            duration_ms=outcome.duration_s * 1000,
            key_id=None if outcome.caller is None else outcome.caller.id,
            profile=profile,
            model=outcome.model if passthrough else None,
            trace=None if passthrough else trace,
            upstream=_passthrough_call(trace) if passthrough else None,
            error_type=None if error is None else (error.code or error.type),
            stream=outcome.streamed,
            time_to_first_token_ms=None if outcome.ttft_s is None else outcome.ttft_s * 1000,
            policy_provider=policy_provider,
            question=outcome.question,
            models=models,
        )


def _passthrough_call(trace: RouterTrace | None) -> UpstreamCall | None:
    if trace is None or not trace.steps:
        return None
    step = trace.steps[-1]  # the call that answered (or the last fallback tried)
    return UpstreamCall(
        model=step.model or trace.model or NONE,
        status=step.upstream_status or trace.outcome,
        prompt_tokens=step.upstream_prompt_tokens,
        completion_tokens=step.upstream_completion_tokens,
        cost_usd=trace.totals.cost_usd,
        attempts=sum(max(s.upstream_attempts, 1) for s in trace.steps),
        deployment=step.deployment,
        error=step.upstream_error,
        reply_text=step.reply_excerpt,
    )
