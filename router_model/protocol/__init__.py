"""The Router-R1 protocol: prompts, turns, actions, observations, names (pure, no I/O)."""

from router_model.protocol.answer import extract_answer, extract_policy_answer
from router_model.protocol.names import (
    NameResolver,
    NameRule,
    PoolNames,
    default_pool_resolver,
    legacy_resolver,
    legacy_upstream_temperature,
    resolver_for_pool,
)
from router_model.protocol.observation import (
    OBSERVATION_MAX_TOKENS,
    format_observation,
    neutralize_tags,
)
from router_model.protocol.prompt import (
    ModelDescriptor,
    fill_policy_prompt,
    normalize_question,
    render_policy_template,
    render_upstream_prompt,
)
from router_model.protocol.tags import ALL_TAGS
from router_model.protocol.templates import default_pool_descriptors, reference_template
from router_model.protocol.turn import Action, ActionKind, cut_turn, parse_action

__all__ = [
    "ALL_TAGS",
    "OBSERVATION_MAX_TOKENS",
    "Action",
    "ActionKind",
    "ModelDescriptor",
    "NameResolver",
    "NameRule",
    "PoolNames",
    "cut_turn",
    "default_pool_descriptors",
    "default_pool_resolver",
    "extract_answer",
    "extract_policy_answer",
    "fill_policy_prompt",
    "format_observation",
    "legacy_resolver",
    "legacy_upstream_temperature",
    "neutralize_tags",
    "normalize_question",
    "parse_action",
    "reference_template",
    "render_policy_template",
    "render_upstream_prompt",
    "resolver_for_pool",
]
