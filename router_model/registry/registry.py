"""A loaded registry: look-ups, pools, name resolvers and rendered prompts per profile."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from router_model.protocol.names import NameResolver, resolver_for_pool
from router_model.protocol.prompt import render_policy_template
from router_model.registry.loader import read_registry_file
from router_model.registry.schema import Endpoint, ModelSpec, RegistryFile, RouterProfile


@dataclass(frozen=True)
class Registry:
    """An immutable, validated registry. Swap the whole object to reload."""

    spec: RegistryFile
    source: str = "<memory>"
    _models: dict[str, ModelSpec] = field(init=False, repr=False, compare=False)
    _profiles: dict[str, RouterProfile] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_models", {m.name: m for m in self.spec.models})
        object.__setattr__(self, "_profiles", {p.name: p for p in self.spec.profiles})

    @classmethod
    def from_file(cls, path: str | Path, environ: Mapping[str, str] | None = None) -> Registry:
        return cls(read_registry_file(path, environ), str(path))

    @property
    def models(self) -> tuple[ModelSpec, ...]:
        return self.spec.models

    @property
    def profiles(self) -> tuple[RouterProfile, ...]:
        return self.spec.profiles

    def model(self, name: str) -> ModelSpec | None:
        """A model by its exact registry name."""
        return self._models.get(name)

    def profile(self, name: str) -> RouterProfile | None:
        return self._profiles.get(name)

    def endpoint(self, name: str) -> Endpoint:
        return self.spec.endpoints[name]

    def pool(self, profile: RouterProfile) -> tuple[ModelSpec, ...]:
        """The profile's routable models, in the order the prompt lists them."""
        return tuple(self._models[name] for name in profile.pool)

    @cached_property
    def _templates(self) -> dict[str, str]:
        return {
            p.name: render_policy_template(self.pool(p), p.template) for p in self.spec.profiles
        }

    def policy_template(self, profile: RouterProfile) -> str:
        """The profile's policy prompt with ``{question}`` still to be filled."""
        return self._templates[profile.name]

    @cached_property
    def _resolvers(self) -> dict[str, NameResolver]:
        return {p.name: resolver_for_pool(self.pool(p)) for p in self.spec.profiles}

    def resolver(self, profile: RouterProfile) -> NameResolver:
        """Resolves a model name as the policy wrote it to a pool model's registry name."""
        return self._resolvers[profile.name]
