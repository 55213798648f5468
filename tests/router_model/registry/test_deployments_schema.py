"""Registry schema rules of deployments, pricing, retries and fallbacks: each bad edit is one
clear line; the single-endpoint form keeps working unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from router_model.registry import (
    Deployment,
    ModelSpec,
    Pricing,
    Registry,
    RegistryError,
    RegistryFile,
    parse_registry,
)
from router_model.usage import Usage
from router_r1.cli import app as cli

HEAD = """
allow_empty: true
endpoints:
  a: {base_url: "http://127.0.0.1:9/v1"}
  b: {base_url: "http://127.0.0.1:10/v1"}
models:
"""
SINGLE = """
  - name: Alpha-1B
    description: A small model.
    endpoint: a
    upstream_model: alpha
    pricing: {input_per_1m: 0.1, output_per_1m: 0.2}
"""
TWO_DEPLOYMENTS = """
  - name: Beta-2B
    description: A model served twice.
    pricing: {input_per_1m: 1.0, output_per_1m: 2.0}
    deployments:
      - {endpoint: a, upstream_model: beta-a, weight: 3}
      - {endpoint: b, upstream_model: beta-b, pricing: {input_per_1m: 0.5, output_per_1m: 1}}
"""


def _load(models: str) -> Registry:
    return Registry(parse_registry(HEAD + models, "reg.yaml", {}))


def _error(models: str) -> str:
    with pytest.raises(RegistryError) as info:
        parse_registry(HEAD + models, "reg.yaml", {})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_single_endpoint_is_one_deployment_named_after_it() -> None:
    model = _load(SINGLE).model("Alpha-1B")
    assert model is not None
    assert (model.endpoint, model.upstream_model) == ("a", "alpha")
    (deployment,) = model.deployments
    assert (deployment.name, deployment.endpoint, deployment.upstream_model) == ("a", "a", "alpha")
    assert deployment.weight == 1.0
    assert model.pricing_of(deployment) is model.pricing
    # a dumped model reads back (both forms present, saying the same thing)
    assert ModelSpec.model_validate(model.model_dump()) == model


def test_deployments_with_weights_and_own_pricing() -> None:
    model = _load(TWO_DEPLOYMENTS).model("Beta-2B")
    assert model is not None
    assert model.endpoint is None
    first, second = model.deployments
    assert (first.name, first.weight, first.pricing) == ("a", 3.0, None)
    assert model.pricing_of(first).input_per_1m == 1.0
    assert model.pricing_of(second).input_per_1m == 0.5
    assert ModelSpec.model_validate(model.model_dump()) == model


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (
            TWO_DEPLOYMENTS.replace("    deployments:", "    endpoint: a\n    deployments:"),
            "give either endpoint + upstream_model or deployments, not both",
        ),
        (SINGLE.replace("    endpoint: a\n", ""), "endpoint is missing"),
        (
            SINGLE.replace("    endpoint: a\n    upstream_model: alpha\n", ""),
            "endpoint + upstream_model (or deployments) is required",
        ),
        (TWO_DEPLOYMENTS.replace("endpoint: b,", "endpoint: a,"), "two are named 'a'"),
        (TWO_DEPLOYMENTS.replace("weight: 3", "weight: 0"), "greater than 0"),
        (TWO_DEPLOYMENTS.replace("endpoint: b,", "endpoint: c,"), "endpoint 'c' is not defined"),
        (
            TWO_DEPLOYMENTS.replace("    deployments:\n", "    deployments: []\n").split(
                "\n      -"
            )[0],
            "at least 1 item",
        ),
    ],
)
def test_bad_deployments_are_one_line(edit: str, needle: str) -> None:
    assert needle in _error(edit)


def test_names_disambiguate_two_deployments_on_one_endpoint() -> None:
    text = TWO_DEPLOYMENTS.replace("endpoint: b,", "name: a-slow, endpoint: a,")
    model = _load(text).model("Beta-2B")
    assert model is not None
    assert [d.name for d in model.deployments] == ["a", "a-slow"]


def test_a_model_without_pricing_is_an_error_unless_free() -> None:
    unpriced = SINGLE.replace("    pricing: {input_per_1m: 0.1, output_per_1m: 0.2}\n", "")
    assert _error(unpriced) == (
        "reg.yaml: models[0] ('Alpha-1B'): pricing is missing: give pricing: {input_per_1m: "
        "..., output_per_1m: ...} (USD per 1M tokens), or pricing: {free: true} for a model "
        "that costs nothing"
    )
    half = SINGLE.replace("{input_per_1m: 0.1, output_per_1m: 0.2}", "{input_per_1m: 0.1}")
    assert "pricing is missing" in _error(half)
    assert "pricing is missing" in _error(
        SINGLE.replace("{input_per_1m: 0.1, output_per_1m: 0.2}", "{}")
    )
    free = _load(SINGLE.replace("{input_per_1m: 0.1, output_per_1m: 0.2}", "{free: true}"))
    model = free.model("Alpha-1B")
    assert model is not None
    assert model.pricing.free
    assert model.pricing.cost_usd(1000, 1000) == 0.0
    both = SINGLE.replace("output_per_1m: 0.2}", "output_per_1m: 0.2, free: true}")
    assert "free: true and non-zero prices" in _error(both)


def test_deployment_pricing_can_stand_in_for_the_models() -> None:
    every = TWO_DEPLOYMENTS.replace("    pricing: {input_per_1m: 1.0, output_per_1m: 2.0}\n", "")
    assert "pricing is missing" in _error(every)  # deployment a has no price of its own
    priced = every.replace("weight: 3}", "weight: 3, pricing: {free: true}}")
    model = _load(priced).model("Beta-2B")
    assert model is not None
    assert [model.pricing_of(d).free for d in model.deployments] == [True, False]
    assert model.pricing_of().free  # an estimate: the first deployment's, never an unset one
    unpriced_deployment = TWO_DEPLOYMENTS.replace(
        "pricing: {input_per_1m: 0.5, output_per_1m: 1}", "pricing: {}"
    )
    assert "pricing is missing" in _error(unpriced_deployment)


def test_zero_prices_written_out_are_explicit() -> None:
    zero = SINGLE.replace(
        "{input_per_1m: 0.1, output_per_1m: 0.2}", "{input_per_1m: 0, output_per_1m: 0}"
    )
    assert _load(zero).model("Alpha-1B") is not None


def test_cached_input_price() -> None:
    pricing = Pricing(input_per_1m=1.0, output_per_1m=2.0, cached_input_per_1m=0.25)
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=600)
    assert pricing.cost_of(usage) == pytest.approx((400 * 1.0 + 600 * 0.25 + 100 * 2.0) / 1e6)
    undeclared = Pricing(input_per_1m=1.0, output_per_1m=2.0)
    assert undeclared.cost_of(usage) == pytest.approx((1000 * 1.0 + 100 * 2.0) / 1e6)
    # more cached than prompt tokens (a confused upstream): capped at the prompt
    assert pricing.cost_usd(10, 0, cached_tokens=50) == pytest.approx(10 * 0.25 / 1e6)


def test_usage_reads_cached_tokens() -> None:
    usage = Usage.from_json(
        {
            "prompt_tokens": 50,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 32},
        }
    )
    assert usage == Usage(50, 5, 32)
    assert Usage.from_json({"prompt_tokens": 5, "prompt_tokens_details": None}) == Usage(5, 0, 0)
    assert Usage.from_json(
        {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": -1}}
    ) == (Usage(5, 0, 0))


def test_retry_opt_in() -> None:
    model = _load(SINGLE + "    retry: {unsafe: true}\n").model("Alpha-1B")
    assert model is not None
    assert model.retry.unsafe
    assert not _load(SINGLE).model("Alpha-1B").retry.unsafe  # type: ignore[union-attr]
    assert "retry.always: unknown field" in _error(SINGLE + "    retry: {always: true}\n")


def test_fallbacks_name_other_registry_models() -> None:
    ok = _load(SINGLE + "    fallbacks: [Beta-2B]\n" + TWO_DEPLOYMENTS)
    model = ok.model("Alpha-1B")
    assert model is not None
    assert model.fallbacks == ("Beta-2B",)
    assert "fallbacks names unknown model 'Gamma'" in _error(SINGLE + "    fallbacks: [Gamma]\n")
    assert "fallbacks names itself 'Alpha-1B'" in _error(SINGLE + "    fallbacks: [Alpha-1B]\n")
    twice = SINGLE + "    fallbacks: [Beta-2B, Beta-2B]\n" + TWO_DEPLOYMENTS
    assert "fallbacks: lists a model twice" in _error(twice)


def test_a_model_built_in_code_needs_pricing_too() -> None:
    with pytest.raises(ValueError, match="pricing is missing"):
        ModelSpec(name="X", description="x", endpoint="a", upstream_model="x")  # type: ignore[call-arg]
    deployment = Deployment(endpoint="a", upstream_model="x", pricing=Pricing(free=True))  # type: ignore[call-arg]
    assert deployment.name == "a"
    spec = ModelSpec(name="X", description="x", deployments=(deployment,))
    assert RegistryFile.model_validate(
        {"endpoints": {"a": {"base_url": "http://h/v1"}}, "models": [spec.model_dump()]}
    ).models == (spec,)


def test_registry_check_lists_deployments_and_fallbacks(tmp_path: Path) -> None:
    path = tmp_path / "reg.yaml"
    path.write_text(HEAD + SINGLE + "    fallbacks: [Beta-2B]\n" + TWO_DEPLOYMENTS)
    result = CliRunner().invoke(cli, ["registry", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "model Alpha-1B: alpha at http://127.0.0.1:9/v1, $0.1/$0.2 per 1M in/out, " in (
        result.output
    )
    assert "fallbacks Beta-2B" in result.output
    assert (
        "model Beta-2B: beta-a at http://127.0.0.1:9/v1 (weight 3); beta-b at "
        "http://127.0.0.1:10/v1 (weight 1), $0.5/$1 per 1M in/out, $1/$2 per 1M in/out"
    ) in result.output
    path.write_text(
        HEAD + SINGLE.replace("    pricing: {input_per_1m: 0.1, output_per_1m: 0.2}\n", "")
    )
    result = CliRunner().invoke(cli, ["registry", "check", str(path)])
    assert result.exit_code == 1
    assert "pricing is missing" in result.output
