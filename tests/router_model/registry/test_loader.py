"""Registry files: the shipped default loads; each kind of bad edit is one clear line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from router_model.protocol.names import default_pool_resolver
from router_model.protocol.templates import reference_sha256
from router_model.registry import Registry, RegistryError, parse_registry, read_registry_file

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "model_registry.yaml"

MINIMAL = """
endpoints:
  up: {base_url: "http://127.0.0.1:9/v1"}
models:
  - name: Alpha-1B
    description: A small model.
    endpoint: up
    upstream_model: alpha
    pricing: {input_per_1m: 0.1, output_per_1m: 0.2}
profiles:
  - name: router-r1
    policy: {endpoint: up, model: policy}
    pool: [Alpha-1B]
"""


def _error(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(RegistryError) as info:
        parse_registry(text, "reg.yaml", environ or {})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("reg.yaml")
    return message


def test_default_registry_is_the_paper_pool() -> None:
    registry = Registry.from_file(DEFAULT, environ={})
    profile = registry.profile("router-r1")
    assert profile is not None
    assert profile.policy.model == "ulab-ai/Router-R1-Qwen2.5-3B-Instruct"
    assert [m.name for m in registry.pool(profile)] == [
        "Qwen2.5-7B-Instruct",
        "LLaMA-3.1-8B-Instruct",
        "LLaMA-3.1-70B-Instruct",
        "Mistral-7B-Instruct",
        "Mixtral-8x22B-Instruct",
        "Gemma-2-27B-Instruct",
    ]
    gemma = registry.model("Gemma-2-27B-Instruct")
    assert gemma is not None
    assert gemma.defaults.temperature == 0.1
    assert gemma.pricing.output_per_1m == 0.8
    assert registry.endpoint(gemma.endpoint).base_url == "https://integrate.api.nvidia.com/v1"


def test_default_registry_renders_the_trained_template_byte_for_byte() -> None:
    registry = Registry.from_file(DEFAULT, environ={})
    profile = registry.profile("router-r1")
    assert profile is not None
    rendered = registry.policy_template(profile)
    digest = hashlib.sha256(rendered.encode("utf-8")).hexdigest()
    assert digest == reference_sha256("policy_template_qwen")


@pytest.mark.parametrize(
    "written",
    [
        "Qwen2.5-7B-Instruct",
        "qwen",
        "qwen2.5-72b",
        "LLaMA-3.1-8B",
        "llama-3.1-70b",
        "LLAMA 8B chatqa",
        "llama",
        "llama mistral",
        "Gemma",
        " Gemma-2-27B-Instruct ",
        "mixtral",
        "MISTRAL-7B-INSTRUCT",
        "granite-8b",
        "Palmyra-Creative-122B",
        "GPT-4o",
        "",
        "Llama-3.3-Nemotron-49B",
        "gemma granite",
    ],
)
def test_registry_resolver_agrees_with_the_reference_on_the_default_pool(written: str) -> None:
    registry = Registry.from_file(DEFAULT, environ={})
    profile = registry.profile("router-r1")
    assert profile is not None
    assert registry.resolver(profile).resolve(written) == default_pool_resolver().resolve(written)


def test_env_references_expand_with_defaults() -> None:
    text = MINIMAL.replace('"http://127.0.0.1:9/v1"', '"${UP_URL:-http://127.0.0.1:9/v1}"')
    assert parse_registry(text, "r", {}).endpoints["up"].base_url == "http://127.0.0.1:9/v1"
    other = parse_registry(text, "r", {"UP_URL": "https://example.test/v1/"})
    assert other.endpoints["up"].base_url == "https://example.test/v1"


def test_unset_env_reference_without_default() -> None:
    message = _error(MINIMAL.replace('"http://127.0.0.1:9/v1"', '"${UP_URL}"'))
    assert "endpoints.up.base_url" in message
    assert "UP_URL is not set" in message


def test_missing_field() -> None:
    message = _error(MINIMAL.replace("    upstream_model: alpha\n", ""))
    assert message == (
        "reg.yaml: models[0] ('Alpha-1B'): upstream_model is missing "
        "(give endpoint + upstream_model, or deployments)"
    )
    message = _error(MINIMAL.replace("    description: A small model.\n", ""))
    assert message == "reg.yaml: models[0] ('Alpha-1B').description: required field is missing"


def test_wrong_type() -> None:
    message = _error(MINIMAL.replace("output_per_1m: 0.2", "output_per_1m: cheap"))
    assert "models[0] ('Alpha-1B').pricing.output_per_1m" in message
    assert "valid number" in message


def test_unknown_field() -> None:
    message = _error(
        MINIMAL.replace("upstream_model: alpha", "upstream_model: alpha\n    prize: 3")
    )
    assert message == "reg.yaml: models[0] ('Alpha-1B').prize: unknown field"


def test_duplicate_model_name() -> None:
    twice = MINIMAL.replace(
        "profiles:",
        "  - name: alpha-1b\n    description: Again.\n"
        "    endpoint: up\n    upstream_model: a2\n    pricing: {free: true}\nprofiles:",
    )
    message = _error(twice)
    assert "models[1] ('alpha-1b'): duplicate model name 'alpha-1b'" in message


def test_profile_naming_an_unknown_model() -> None:
    message = _error(MINIMAL.replace("pool: [Alpha-1B]", "pool: [Alpha-1B, Beta-2B]"))
    assert "profiles[0] ('router-r1'): pool names unknown model 'Beta-2B'" in message


def test_bad_url() -> None:
    message = _error(MINIMAL.replace("http://127.0.0.1:9/v1", "127.0.0.1:9/v1"))
    assert "endpoints.up.base_url: not an http(s) URL" in message


def test_undefined_endpoint() -> None:
    message = _error(MINIMAL.replace("    endpoint: up\n", "    endpoint: elsewhere\n"))
    assert "endpoint 'elsewhere' is not defined" in message


def test_api_key_must_be_a_variable_name_and_is_not_echoed() -> None:
    message = _error(
        MINIMAL.replace(
            'base_url: "http://127.0.0.1:9/v1"',
            'base_url: "http://127.0.0.1:9/v1", api_key_env: "sk-secret-123"',
        )
    )
    assert "api_key_env" in message
    assert "secret" not in message


def test_name_with_colon_is_refused() -> None:
    message = _error(
        MINIMAL.replace("name: Alpha-1B", "name: 'Alpha:1B'").replace("[Alpha-1B]", "['Alpha:1B']")
    )
    assert "must not contain ':'" in message


def test_invalid_yaml_names_the_line() -> None:
    message = _error(MINIMAL + "  - [\n")
    assert "invalid YAML" in message
    assert "line" in message


def test_duplicate_yaml_key() -> None:
    message = _error("version: 1\nversion: 1\n")
    assert "duplicate key 'version'" in message


def test_top_level_must_be_a_mapping() -> None:
    assert _error("- a\n- b\n") == "reg.yaml: expected a mapping at the top level"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        read_registry_file(tmp_path / "missing.yaml")


def test_several_problems_are_counted() -> None:
    text = MINIMAL.replace("output_per_1m: 0.2", "output_per_1m: cheap").replace(
        "    description: A small model.\n", ""
    )
    assert "(and 1 more problem)" in _error(text)
