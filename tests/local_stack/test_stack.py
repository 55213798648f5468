"""The local stack's pieces that need no running servers: registry, environment, usage text."""

from __future__ import annotations

from pathlib import Path

from local_stack.processes import LlamaServerSpec
from local_stack.stack import (
    LOCAL_PROFILE,
    PORT_ENV,
    StackOptions,
    local_registry_path,
    stack_environment,
    usage_text,
)
from router_model.registry import Registry


def _specs() -> list[LlamaServerSpec]:
    return [
        LlamaServerSpec(name, Path(f"/m/{name}.gguf"), name, port)
        for name, port in (("policy", 9101), ("smollm2", 9102), ("gemma3", 9103))
    ]


def test_the_packaged_registry_points_at_the_chosen_ports() -> None:
    env = stack_environment(_specs(), StackOptions(port=9000), {"ROUTER_R1_REDIS_URL": "x"})
    assert env["ROUTER_R1_REGISTRY"] == str(local_registry_path())
    assert (env["ROUTER_R1_HOST"], env["ROUTER_R1_PORT"]) == ("127.0.0.1", "9000")
    assert "ROUTER_R1_REDIS_URL" not in env  # in-memory store
    assert {env[PORT_ENV[n]] for n in ("policy", "smollm2", "gemma3")} == {"9101", "9102", "9103"}
    registry = Registry.from_file(env["ROUTER_R1_REGISTRY"], environ=env)
    profile = registry.profile(LOCAL_PROFILE)
    assert profile is not None
    assert profile.grammar is True
    assert profile.policy.engine == "llamacpp"
    assert registry.endpoint(profile.policy.endpoint).base_url == "http://127.0.0.1:9101/v1"
    pool = registry.pool(profile)
    assert [m.name for m in pool] == ["SmolLM2-135M-Instruct", "Gemma-3-270M"]
    assert [registry.endpoint(m.endpoint).base_url for m in pool] == [
        "http://127.0.0.1:9102/v1",
        "http://127.0.0.1:9103/v1",
    ]
    assert pool[0].pricing.output_per_1m != pool[1].pricing.output_per_1m


def test_usage_text_has_the_base_url_a_snippet_and_curl() -> None:
    text = usage_text("http://127.0.0.1:9000/v1")
    assert 'OpenAI(base_url="http://127.0.0.1:9000/v1"' in text
    assert f'model="{LOCAL_PROFILE}"' in text
    assert "curl -s http://127.0.0.1:9000/v1/chat/completions" in text
    assert "Ctrl-C" in text
