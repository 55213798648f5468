"""Span attribute and event names: the OpenTelemetry GenAI semantic conventions (development
status, semconv 1.37+: ``gen_ai.provider.name``, which replaced ``gen_ai.system``) and the
gateway's own ``router_r1.*`` attributes. Each attribute costs export CPU (encoding is most
of it): nothing is written twice.

Span names follow the GenAI convention ``{gen_ai.operation.name} {gen_ai.request.model}``
(``invoke_agent {profile}`` for an episode's request span).
"""

from __future__ import annotations

# GenAI semantic conventions
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHED_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
CONTENT_EVENT = "gen_ai.client.inference.operation.details"  # opt-in: prompts and replies

OP_AGENT = "invoke_agent"  # an episode: the policy plans, calls models, answers
OP_CHAT = "chat"  # an upstream chat completion (and a passthrough request)
OP_COMPLETION = "text_completion"  # a policy turn (the engine's /v1/completions)

# General conventions
ERROR_TYPE = "error.type"
HTTP_STATUS = "http.response.status_code"

# The gateway's own
REQUEST_ID = "router_r1.request_id"
KEY_ID = "router_r1.key_id"
MODE = "router_r1.mode"  # not written: gen_ai.operation.name tells (invoke_agent / chat)
PROFILE = "router_r1.profile"
OUTCOME = "router_r1.outcome"
ROUTES = "router_r1.routes"
MODELS = "router_r1.models"
COST = "router_r1.cost_usd"
POLICY_COST = "router_r1.policy_cost_usd"
UPSTREAM_COST = "router_r1.upstream_cost_usd"
OVERHEAD_MS = "router_r1.overhead_ms"
STREAM = "router_r1.stream"
TTFT_MS = "router_r1.time_to_first_token_ms"
STEP_INDEX = "router_r1.step.index"
ACTION = "router_r1.action"
WRITTEN_MODEL = "router_r1.written_model"
MODEL = "router_r1.model"
LATENCY_MS = "router_r1.latency_ms"
CACHED = "router_r1.cached"
UPSTREAM_STATUS = "router_r1.upstream_status"
ATTEMPTS = "router_r1.attempts"
DEPLOYMENT = "router_r1.deployment"
