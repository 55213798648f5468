"""The gateway's Prometheus metrics (prefix ``router_r1_``), owned by one :class:`Metrics`.

Labels are bounded: ``profile`` and ``model`` come from the registry (``"none"`` when a request
named neither), ``status`` is an HTTP status or an upstream call status, ``kind``/``reason``/
``result``/``operation`` are fixed vocabularies. Never keys, prompts or client strings.

Hot path: label children are bound once and kept (:class:`_Bound`), so an observation is a
dict look-up and an increment. With ``PROMETHEUS_MULTIPROC_DIR`` set before the process starts,
prometheus_client stores values in per-process files and :mod:`.exposition` merges them.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from router_model.episode.trace import CAP_STATUSES, RouterTrace

M = TypeVar("M", Counter, Histogram, Gauge)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
COST_BUCKETS = (1e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 1.0)
ROUTE_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10)

PASSTHROUGH = "passthrough"  # the profile label of a passthrough request
ROUTER = "router"  # the model label of an episode request
NONE = "none"  # a label not known (the request failed before naming a registry entry)
STORE_OPERATIONS = (
    "cache_get",
    "cache_put",
    "admit",
    "settle",
    "record_usage",
    "usage",
    "acquire_model_capacity",
    "record_model_tokens",
    "put_trace",
    "get_trace",
    "list_traces",
    "ping",
)


class _Bound(Generic[M]):
    """Label children of one metric, bound on first use and kept."""

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self.metric.labels(*labels)
        return child


class Metrics:
    """Every metric of one gateway process, registered in ``registry``."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, version: str = "0+unknown"
    ) -> None:
        """``version``: the gateway's, for ``router_r1_build_info``."""
        r = self.registry = registry or CollectorRegistry()
        # The private registry has none of the default registry's collectors: the process's
        # CPU, memory, fds (process_*), the collector's passes (python_gc_*), python_info.
        # In multiprocess mode a scrape is the merged files (``exposition.render``) plus
        # every live worker's process_* read from /proc, labelled pid; not these.
        ProcessCollector(registry=r)
        GCCollector(registry=r)
        PlatformCollector(registry=r)

        def counter(name: str, doc: str, labels: list[str]) -> _Bound[Counter]:
            return _Bound(Counter(name, doc, labels, registry=r))

        def histogram(
            name: str, doc: str, labels: list[str], buckets: tuple[float, ...]
        ) -> _Bound[Histogram]:
            return _Bound(Histogram(name, doc, labels, registry=r, buckets=buckets))

        def gauge(name: str, doc: str, labels: list[str]) -> _Bound[Gauge]:
            return _Bound(Gauge(name, doc, labels, registry=r, multiprocess_mode="livemax"))

        self.requests = counter(
            "router_r1_requests", "Chat completion requests.", ["profile", "model", "status"]
        )
        self.request_errors = counter(
            "router_r1_request_errors", "Failed requests by kind of error.", ["profile", "kind"]
        )
        self.request_duration = histogram(
            "router_r1_request_duration_seconds",
            "End-to-end request latency (to the last byte of a stream).",
            ["profile", "model"],
            LATENCY_BUCKETS,
        )
        self.overhead = histogram(
            "router_r1_overhead_seconds",
            "Gateway time not spent waiting on the policy engine or upstreams.",
            ["profile"],
            OVERHEAD_BUCKETS,
        )
        self.policy_turn = histogram(
            "router_r1_policy_turn_seconds",
            "Time waiting on the policy engine per policy turn.",
            ["profile"],
            LATENCY_BUCKETS,
        )
        self.upstream_calls = counter(
            "router_r1_upstream_calls",
            "Upstream calls by model and outcome (ok, cached, shared, timeout, http_error, "
            "rate_limited, ...).",
            ["model", "status"],
        )
        self.upstream_duration = histogram(
            "router_r1_upstream_call_duration_seconds",
            "Upstream call latency (cache hits included).",
            ["model"],
            LATENCY_BUCKETS,
        )
        self.upstream_tokens = counter(
            "router_r1_upstream_tokens",
            "Upstream tokens; kind: input or output (GenAI semantic conventions).",
            ["model", "kind"],
        )
        self.upstream_retries = counter(
            "router_r1_upstream_retries",
            "Upstream attempts beyond the first (retries), by model.",
            ["model"],
        )
        self.time_to_first_token = histogram(
            "router_r1_time_to_first_token_seconds",
            "Streams: time from the request to the first generated text sent to the client.",
            ["profile", "model"],
            LATENCY_BUCKETS,
        )
        self.cost = counter(
            "router_r1_cost_usd", "Spend in USD by profile and model.", ["profile", "model"]
        )
        self.request_cost = histogram(
            "router_r1_request_cost_usd", "Cost of one request in USD.", ["profile"], COST_BUCKETS
        )
        self.routes = histogram(
            "router_r1_routes_per_request",
            "Routes executed per episode.",
            ["profile"],
            ROUTE_BUCKETS,
        )
        self.invalid_actions = counter(
            "router_r1_invalid_actions",
            "Policy turns with no valid action (invalid or missing).",
            ["profile"],
        )
        self.cache_lookups = counter(
            "router_r1_cache_lookups",
            "Sub-query cache look-ups: hit, miss, bypass (opted out or not deterministic), "
            "error (store unavailable).",
            ["model", "result"],
        )
        self.rejections = counter(
            "router_r1_rejections",
            "Requests refused before serving: unauthenticated, requests, tokens, budget, "
            "store_unavailable.",
            ["reason"],
        )
        self.registry_reloads = counter(
            "router_r1_registry_reloads", "Registry file reloads (ok, failed).", ["result"]
        )
        self.api_key_reloads = counter(
            "router_r1_api_key_reloads", "API key file reloads (ok, failed).", ["result"]
        )
        self.store_errors = counter(
            "router_r1_store_errors", "Shared store operations that failed.", ["operation"]
        )
        self.policy_engine_up = gauge(
            "router_r1_policy_engine_up",
            "1 while a policy engine replica is serving (health not failing, breaker not open).",
            ["profile", "replica"],
        )
        self.policy_engine_breaker_state = gauge(
            "router_r1_policy_engine_breaker_state",
            "A policy engine replica's circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["profile", "replica"],
        )
        self.policy_engine_failovers = counter(
            "router_r1_policy_engine_failovers",
            "Episodes that moved off a failing policy engine replica (labelled with it).",
            ["profile", "replica"],
        )
        self.fallbacks = counter(
            "router_r1_fallbacks",
            "Requests a fallback model answered, by reason: a profile's (engine_unavailable, "
            "no_answer, deadline_exceeded), a passthrough model's (profile passthrough; how the "
            "requested model failed: http_error, timeout, rate_limited, unavailable, ...).",
            ["profile", "reason"],
        )
        self.caps_tripped = counter(
            "router_r1_caps_tripped",
            "Upstream calls not made because a per-request cap would pass (cost_cap, call_cap).",
            ["profile", "cap"],
        )
        self.in_flight = Gauge(
            "router_r1_in_flight_requests",
            "Requests being served.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.registry_reload_failing = Gauge(
            "router_r1_registry_reload_failing",
            "1 while the registry file on disk is invalid (the last good one is served).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.api_key_reload_failing = Gauge(
            "router_r1_api_key_reload_failing",
            "1 while the API key file on disk is invalid (the last good keys are used).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.upstream_breaker_state = Gauge(
            "router_r1_upstream_breaker_state",
            "Circuit breaker of each model deployment: 0 closed, 1 half-open, 2 open.",
            ["model", "deployment"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.build_info = Gauge(
            "router_r1_build_info",
            "Always 1; the gateway's version as a label (join on it, count versions in a fleet).",
            ["version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.build_info.labels(version).set(1)
        for reason in ("unauthenticated", "requests", "tokens", "budget", "store_unavailable"):
            self.rejections(reason)
        for result in ("ok", "failed"):
            self.registry_reloads(result)
            self.api_key_reloads(result)
        for operation in STORE_OPERATIONS:
            self.store_errors(operation)

    # ------------------------------------------------------------------ observations

    def request_finished(
        self,
        profile: str,
        model: str,
        status: str,
        error_kind: str | None,
        duration_s: float,
        *,
        ttft_s: float | None = None,
    ) -> None:
        self.requests(profile, model, status).inc()
        self.request_duration(profile, model).observe(duration_s)
        if error_kind is not None:
            self.request_errors(profile, error_kind).inc()
        if ttft_s is not None:
            self.time_to_first_token(profile, model).observe(ttft_s)

    def breaker_changed(self, model: str, deployment: str, state: int) -> None:
        """A deployment's circuit breaker moved to ``state`` (0 closed, 1 half-open, 2 open)."""
        self.upstream_breaker_state.labels(model, deployment).set(state)

    def trace_finished(self, profile: str, trace: RouterTrace) -> None:
        """Everything a finished request's trace tells: the same for an episode (one step per
        policy turn) and a passthrough (one step: its upstream call)."""
        totals = trace.totals
        self.request_cost(profile).observe(totals.cost_usd)
        if trace.mode == "episode":
            self.overhead(profile).observe(totals.overhead_ms / 1000)
            self.routes(profile).observe(totals.routes)
            if totals.policy_cost_usd and trace.policy_model is not None:
                self.cost(profile, trace.policy_model).inc(totals.policy_cost_usd)
        if trace.fallback is not None:
            self.fallbacks(profile, trace.fallback.reason).inc()
        elif trace.mode == "passthrough" and len(trace.steps) > 1:
            # a model's fallbacks were tried; the reason is how the requested model failed
            first = trace.steps[0].upstream_status or "error"
            if trace.steps[-1].upstream_status in ("ok", "cached"):
                self.fallbacks(profile, first).inc()
        policy_turn = self.policy_turn(profile)
        for step in trace.steps:
            if step.action not in ("passthrough", "fallback"):
                policy_turn.observe(step.policy_latency_ms / 1000)
                if step.action in ("invalid", "none"):
                    self.invalid_actions(profile).inc()
            for replica in step.failover_from:
                self.policy_engine_failovers(profile, replica).inc()
            if step.upstream_status in CAP_STATUSES:
                self.caps_tripped(profile, step.upstream_status).inc()
                continue
            if step.model is None or step.upstream_status in (None, "not_executed"):
                continue
            model = step.model
            status = "shared" if step.shared else step.upstream_status  # another one paid
            self.upstream_calls(model, status).inc()
            self.upstream_duration(model).observe(step.upstream_latency_ms / 1000)
            self.upstream_tokens(model, "input").inc(step.upstream_prompt_tokens)
            self.upstream_tokens(model, "output").inc(step.upstream_completion_tokens)
            if step.upstream_attempts > 1:
                self.upstream_retries(model).inc(step.upstream_attempts - 1)
            if step.upstream_cost_usd:
                self.cost(profile, model).inc(step.upstream_cost_usd)
