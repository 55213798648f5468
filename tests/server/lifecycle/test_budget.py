"""Worst-case costs reserved at admission: upper bounds of what a request can be billed."""

from __future__ import annotations

import pytest

from router_model.episode import PolicyOverrides, resolve_settings
from router_model.episode.caps import worst_case_prompt_tokens
from router_model.protocol.prompt import render_upstream_prompt
from router_model.registry import Registry
from router_model.registry.schema import ProfileFallback
from server.lifecycle.budget import (
    HOLD_MARGIN_S,
    UNBOUNDED_S,
    chat_worst_case_usd,
    episode_worst_case_usd,
    hold_s,
    passthrough_worst_case_usd,
)
from tests.fakes.registry import default_registry, router_profile

MESSAGES = [{"role": "user", "content": "Who wrote War and Peace?"}]


@pytest.fixture
def registry() -> Registry:
    return default_registry()


def test_an_episode_reserves_its_routes_at_the_dearest_pool_model(registry: Registry) -> None:
    profile = router_profile(registry)
    settings = resolve_settings(profile, PolicyOverrides())
    limits = profile.limits
    query = worst_case_prompt_tokens(render_upstream_prompt("")) + limits.max_turn_tokens
    dearest = max(
        m.pricing.cost_usd(query, limits.upstream_max_tokens) for m in registry.pool(profile)
    )
    expected = limits.max_routes * dearest  # the policy is free in this registry
    assert episode_worst_case_usd(registry, profile, settings, {"messages": MESSAGES}) == (
        pytest.approx(expected)
    )
    assert expected > 0


def test_policy_turns_count_at_the_policy_price(registry: Registry) -> None:
    profile = router_profile(registry, max_routes=0)
    policy = profile.policy.model_copy(
        update={"pricing": profile.policy.pricing.model_copy(update={"input_per_1m": 1.0})}
    )
    profile = profile.model_copy(update={"policy": policy})
    settings = resolve_settings(profile, PolicyOverrides())
    worst = episode_worst_case_usd(registry, profile, settings, {"messages": MESSAGES})
    assert worst == pytest.approx(profile.limits.max_context_tokens / 1e6)


def test_caps_bound_the_reservation(registry: Registry) -> None:
    profile = router_profile(registry)
    body = {"messages": MESSAGES}
    free = episode_worst_case_usd(
        registry, profile, resolve_settings(profile, PolicyOverrides()), body
    )
    capped = resolve_settings(profile, PolicyOverrides(max_cost_usd=free / 10))
    assert episode_worst_case_usd(registry, profile, capped, body) == pytest.approx(free / 10)
    one_call = resolve_settings(profile, PolicyOverrides(max_upstream_calls=1))
    assert episode_worst_case_usd(registry, profile, one_call, body) == pytest.approx(
        free / profile.limits.max_routes
    )


def test_a_fallback_adds_its_call(registry: Registry) -> None:
    profile = router_profile(registry)
    settings = resolve_settings(profile, PolicyOverrides())
    body = {"messages": MESSAGES, "max_tokens": 100}
    without = episode_worst_case_usd(registry, profile, settings, body)
    fallback = ProfileFallback(model="Gemma-2-27B-Instruct", when=("no_answer",))
    spec = profile.model_copy(update={"fallback": fallback})
    with_fallback = episode_worst_case_usd(registry, spec, settings, body)
    gemma = registry.model("Gemma-2-27B-Instruct")
    assert gemma is not None
    assert with_fallback == pytest.approx(without + chat_worst_case_usd(gemma, body))


def test_a_passthrough_reserves_its_prompt_and_completion_cap(registry: Registry) -> None:
    qwen = registry.model("Qwen2.5-7B-Instruct")
    assert qwen is not None
    short = passthrough_worst_case_usd(qwen, {"messages": MESSAGES, "max_tokens": 10})
    default = passthrough_worst_case_usd(qwen, {"messages": MESSAGES})
    assert default - short == pytest.approx(qwen.pricing.cost_usd(0, qwen.defaults.max_tokens - 10))
    newer = passthrough_worst_case_usd(qwen, {"messages": MESSAGES, "max_completion_tokens": 10})
    assert newer == pytest.approx(short)


def test_a_reservation_holds_for_the_request_bounds_and_a_margin() -> None:
    assert hold_s(300.0, 600.0) == 900.0 + HOLD_MARGIN_S
    assert hold_s(None) == UNBOUNDED_S + HOLD_MARGIN_S
