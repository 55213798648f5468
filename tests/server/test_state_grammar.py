"""``grammar: true`` profiles get the action grammar of their pool in the current registry."""

from __future__ import annotations

from router_model.registry import Registry
from router_model.registry.schema import ModelSpec
from server.state import final_turn_grammar, profile_grammar
from tests.fakes.registry import default_registry, router_profile


def _with_grammar(registry: Registry, extra_model: ModelSpec | None = None) -> Registry:
    profile = router_profile(registry)
    models = registry.spec.models
    pool = profile.pool
    if extra_model is not None:
        models = (*models, extra_model)
        pool = (*pool, extra_model.name)
    profiles = tuple(
        p.model_copy(update={"grammar": True, "pool": pool}) if p.name == profile.name else p
        for p in registry.spec.profiles
    )
    spec = registry.spec.model_copy(update={"models": models, "profiles": profiles})
    return Registry(spec)


def test_off_by_default() -> None:
    registry = default_registry()
    assert profile_grammar(registry, router_profile(registry)) is None


def test_names_the_profiles_pool_and_follows_registry_changes() -> None:
    base = default_registry()
    registry = _with_grammar(base)
    profile = registry.profile("router-r1")
    assert profile is not None
    grammar = profile_grammar(registry, profile)
    assert grammar is not None
    for model in registry.pool(profile):
        assert f'"{model.name}"' in grammar
    new_model = base.models[0].model_copy(
        update={"name": "Brand-New-Model", "aliases": (), "match": ()}
    )
    reloaded = _with_grammar(base, new_model)
    new_profile = reloaded.profile("router-r1")
    assert new_profile is not None
    new_grammar = profile_grammar(reloaded, new_profile)
    assert new_grammar is not None
    assert '"Brand-New-Model"' in new_grammar
    assert '"Brand-New-Model"' not in grammar


def test_the_final_turn_of_a_grammar_profile_may_only_answer() -> None:
    registry = _with_grammar(default_registry())
    profile = registry.profile("router-r1")
    assert profile is not None
    final = final_turn_grammar(profile)
    assert final is not None
    assert "action ::= answer\n" in final
    assert "<search>" not in final
    assert final_turn_grammar(router_profile(default_registry())) is None
