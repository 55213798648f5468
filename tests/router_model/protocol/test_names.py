import itertools

import pytest

from router_model.protocol.names import (
    NameResolver,
    NameRule,
    PoolNames,
    default_pool_match_rules,
    default_pool_resolver,
    legacy_resolver,
    legacy_upstream_temperature,
    resolver_for_pool,
)
from router_model.protocol.templates import default_pool_descriptors


@pytest.mark.parametrize(
    ("written", "target"),
    [
        ("qwen2.5-72b", "qwen/qwen2.5-7b-instruct"),
        ("LLAMA 8B chatqa", "nvidia/llama3-chatqa-1.5-8b"),
        ("ChatQA-1.5-8B", None),
        ("llama", None),
        ("llama mistral", None),
        ("llama-70b-8b", "meta/llama-3.1-70b-instruct"),
        ("Creative writer", "writer/palmyra-creative-122b"),
        ("Llama-3.1-Nemotron-51B", "nvidia/llama-3.1-nemotron-51b-instruct"),
        (" Gemma ", "google/gemma-2-27b-it"),
        ("granite-8b", "ibm/granite-3.0-8b-instruct"),
        ("", None),
    ],
)
def test_legacy_resolver(written: str, target: str | None) -> None:
    assert legacy_resolver().resolve(written) == target


def test_legacy_temperature() -> None:
    assert legacy_upstream_temperature("google/gemma-2-27b-it") == 0.1
    assert legacy_upstream_temperature("qwen/qwen2.5-7b-instruct") == 0.0
    assert legacy_upstream_temperature("") == 0.0


def test_exact_alias_wins_over_rules() -> None:
    resolver = NameResolver(
        exact={"small-llama": "B"},
        rules=[NameRule("A", ("llama",)), NameRule("B", ("small",))],
    )
    assert resolver.resolve("  Small-LLaMA ") == "B"
    assert resolver.resolve("llama small") == "A"
    assert resolver.resolve("tiny") is None
    assert not resolver.is_known("   ")


def test_none_of_blocks_a_rule() -> None:
    rule = NameRule("llama-8b", ("llama", "8b"), ("chatqa",))
    assert rule.matches("llama-3.1-8b")
    assert not rule.matches("llama 8b chatqa")


def test_rule_validation() -> None:
    with pytest.raises(ValueError, match="all_of"):
        NameRule("x", ())
    with pytest.raises(ValueError, match="lowercase"):
        NameRule("x", ("Llama",))


def test_resolver_for_pool_targets_are_pool_names() -> None:
    resolver = resolver_for_pool(
        [
            PoolNames("Big-One", aliases=("big",), match=(NameRule("ignored", ("huge",)),)),
            PoolNames("Small-One"),
        ]
    )
    assert resolver.resolve("BIG") == "Big-One"
    assert resolver.resolve("a huge model") == "Big-One"
    assert resolver.resolve("small-one") == "Small-One"
    assert resolver.resolve("small") is None


def test_resolver_for_pool_rejects_shared_alias() -> None:
    with pytest.raises(ValueError, match="claimed"):
        resolver_for_pool([PoolNames("A", aliases=("x",)), PoolNames("B", aliases=("X",))])


def test_default_pool_rules_cover_the_pool() -> None:
    assert list(default_pool_match_rules()) == [m.name for m in default_pool_descriptors()]


_TOKENS = (
    "qwen", "palmyra", "creative", "llama", "70b", "51b", "49b", "8b", "chatqa",
    "mistral", "mixtral", "granite", "gemma",
)  # fmt: skip


def test_default_pool_resolver_agrees_with_reference_on_every_token_mix() -> None:
    by_api = {m.api_model: m.name for m in default_pool_descriptors()}
    legacy, pool = legacy_resolver(), default_pool_resolver()
    reversed_pool = resolver_for_pool(
        PoolNames(name, match=rules) for name, rules in reversed(default_pool_match_rules().items())
    )
    for size in range(len(_TOKENS) + 1):
        for combo in itertools.combinations(_TOKENS, size):
            written = "-".join(combo)
            api_model = legacy.resolve(written)
            expected = by_api.get(api_model) if api_model else None
            assert pool.resolve(written) == expected, written
            assert reversed_pool.resolve(written) == expected, written


def test_default_pool_resolver_exact_names() -> None:
    pool = default_pool_resolver()
    for model in default_pool_descriptors():
        assert pool.resolve(model.name.upper()) == model.name
    assert pool.resolve("LLAMA 8B chatqa") is None
    assert pool.resolve("Palmyra-Creative-122B") is None
