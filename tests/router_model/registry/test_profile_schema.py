"""Profile fields for replicas, the session header, fallbacks and caps: valid forms and the one
line each mistake gives."""

from __future__ import annotations

import pytest

from router_model.registry import RegistryError, parse_registry

REGISTRY = """
endpoints:
  up: {{base_url: "http://127.0.0.1:9/v1"}}
  a: {{base_url: "http://127.0.0.1:10/v1"}}
  b: {{base_url: "http://127.0.0.1:11/v1"}}
models:
  - name: Alpha-1B
    description: A small model.
    endpoint: up
    upstream_model: alpha
    pricing: {{input_per_1m: 0.1, output_per_1m: 0.2}}
profiles:
  - name: router-r1
    policy: {policy}
    pool: [Alpha-1B]
{extra}
"""


def parse(policy: str = "{endpoint: a, model: p}", extra: str = "") -> object:
    return parse_registry(REGISTRY.format(policy=policy, extra=extra), "reg.yaml", {})


def error(policy: str = "{endpoint: a, model: p}", extra: str = "") -> str:
    with pytest.raises(RegistryError) as info:
        parse(policy, extra)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_replicas_and_the_session_header() -> None:
    spec = parse("{endpoints: [a, b], model: p, session_header: x-user-id}")
    (profile,) = spec.profiles  # type: ignore[attr-defined]
    assert profile.policy.replica_endpoints == ("a", "b")
    assert profile.policy.session_header == "x-user-id"
    single = parse().profiles[0]  # type: ignore[attr-defined]
    assert single.policy.replica_endpoints == ("a",)
    assert single.policy.session_header is None


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("{endpoint: a, endpoints: [b], model: p}", "not both"),
        ("{model: p}", "endpoint (or endpoints, for replicas) is required"),
        ("{endpoints: [a, a], model: p}", "lists an endpoint twice"),
        ("{endpoints: [a, nowhere], model: p}", "policy.endpoints 'nowhere' is not defined"),
        ("{endpoint: nowhere, model: p}", "policy.endpoint 'nowhere' is not defined"),
        ("{endpoint: a, model: p, session_header: 'x session'}", "session_header"),
    ],
)
def test_policy_mistakes(policy: str, expected: str) -> None:
    assert expected in error(policy)


def test_a_fallback_and_caps() -> None:
    extra = (
        "    fallback: {model: Alpha-1B, when: [no_answer]}\n"
        "    limits: {max_cost_usd: 0.01, max_upstream_calls: 3}"
    )
    (profile,) = parse(extra=extra).profiles  # type: ignore[attr-defined]
    assert profile.fallback.model == "Alpha-1B"
    assert profile.fallback.when == ("no_answer",)
    assert (profile.limits.max_cost_usd, profile.limits.max_upstream_calls) == (0.01, 3)
    default = parse(extra="    fallback: {model: Alpha-1B}").profiles[0]  # type: ignore[attr-defined]
    assert default.fallback.when == ("engine_unavailable", "no_answer", "deadline_exceeded")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    fallback: {model: Beta-2B}", "fallback.model names unknown model 'Beta-2B'"),
        ("    fallback: {model: Alpha-1B, when: []}", "fallback.when"),
        ("    fallback: {model: Alpha-1B, when: [timeout]}", "fallback.when"),
        ("    limits: {max_cost_usd: -1}", "max_cost_usd"),
        ("    limits: {max_upstream_calls: -1}", "max_upstream_calls"),
    ],
)
def test_fallback_and_cap_mistakes(extra: str, expected: str) -> None:
    assert expected in error(extra=extra)
