"""The local stack's pieces that need no running servers: registry, environment, usage text."""

from __future__ import annotations

from pathlib import Path

from local_stack.llama_server_process import LlamaServerOptions
from local_stack.stack import (
    ALIASES,
    LOCAL_PROFILE,
    PLUMBING_PROFILE,
    PORT_ENV,
    StackOptions,
    local_registry_path,
    stack_environment,
    usage_text,
)
from router_model.registry import Registry

QWEN, SMOLLM2 = "Qwen2.5-Coder-1.5B-Instruct", "SmolLM2-135M-Instruct"


def _specs() -> list[LlamaServerOptions]:
    return [
        LlamaServerOptions(name, Path(f"/m/{name}.gguf"), port, alias=ALIASES[name])
        for name, port in (("qwen", 9101), ("smollm2", 9102))
    ]


def _registry() -> tuple[dict[str, str], Registry]:
    env = stack_environment(_specs(), StackOptions(port=9000), {"ROUTER_R1_REDIS_URL": "x"})
    return env, Registry.from_file(env["ROUTER_R1_REGISTRY"], environ=env)


def test_the_packaged_registry_points_at_the_chosen_ports() -> None:
    env, registry = _registry()
    assert env["ROUTER_R1_REGISTRY"] == str(local_registry_path())
    assert (env["ROUTER_R1_HOST"], env["ROUTER_R1_PORT"]) == ("127.0.0.1", "9000")
    assert "ROUTER_R1_REDIS_URL" not in env  # in-memory store
    assert {env[PORT_ENV[n]] for n in ("qwen", "smollm2")} == {"9101", "9102"}
    profile = registry.profile(LOCAL_PROFILE)
    assert profile is not None
    assert profile.policy.endpoint is not None
    assert registry.endpoint(profile.policy.endpoint).base_url == "http://127.0.0.1:9101/v1"
    pool = registry.pool(profile)
    assert [m.name for m in pool] == [QWEN, SMOLLM2]
    assert [registry.endpoint(m.endpoint).base_url for m in pool] == [
        "http://127.0.0.1:9101/v1",  # the policy's own server, as a chat model
        "http://127.0.0.1:9102/v1",
    ]
    assert [m.upstream_model for m in pool] == [ALIASES["qwen"], ALIASES["smollm2"]]


def test_the_default_profile_is_the_prompted_qwen_policy_with_a_fallback() -> None:
    _, registry = _registry()
    profile = registry.profile(LOCAL_PROFILE)
    assert profile is not None
    assert profile.policy.engine == "llamacpp"  # llama-server
    assert profile.policy.model == ALIASES["qwen"]
    assert (profile.template, profile.grammar) == ("qwen", True)
    assert "PROMPTED" in profile.description
    assert "not an RL-trained" in profile.description
    assert profile.limits.max_routes == 2
    # an episode fits a slot's context (4096): the context cap plus one turn
    assert profile.limits.max_context_tokens + profile.limits.max_turn_tokens <= 4096
    assert profile.fallback is not None
    assert profile.fallback.model == QWEN
    assert set(profile.fallback.when) == {"engine_unavailable", "no_answer", "deadline_exceeded"}


def test_the_pool_is_priced_apart_strong_over_cheap() -> None:
    _, registry = _registry()
    qwen, smollm2 = registry.model(QWEN), registry.model(SMOLLM2)
    assert qwen is not None
    assert smollm2 is not None
    assert qwen.pricing.output_per_1m >= 10 * smollm2.pricing.output_per_1m
    assert qwen.pricing.input_per_1m >= 10 * smollm2.pricing.input_per_1m


def test_the_plumbing_profile_is_smollm2_on_its_own_server() -> None:
    _, registry = _registry()
    profile = registry.profile(PLUMBING_PROFILE)
    assert profile is not None
    assert profile.policy.endpoint is not None
    assert registry.endpoint(profile.policy.endpoint).base_url == "http://127.0.0.1:9102/v1"
    assert (profile.policy.engine, profile.grammar) == ("llamacpp", True)
    assert [m.name for m in registry.pool(profile)] == [QWEN, SMOLLM2]


def test_usage_text_has_the_base_url_a_snippet_and_curl() -> None:
    text = usage_text("http://127.0.0.1:9000/v1")
    assert 'OpenAI(base_url="http://127.0.0.1:9000/v1"' in text
    assert f'model="{LOCAL_PROFILE}"' in text
    assert "curl -s http://127.0.0.1:9000/v1/chat/completions" in text
    assert "Ctrl-C" in text
