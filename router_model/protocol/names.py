"""Resolving the model name the policy wrote to a pool model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


def _lookup_key(written: str) -> str:
    return written.strip().lower()


@dataclass(frozen=True)
class NameRule:
    """``target`` matches when every ``all_of`` and no ``none_of`` substring occurs.

    Substrings are lowercase and tested against the stripped, lowercased written name.
    """

    target: str
    all_of: tuple[str, ...]
    none_of: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.all_of:
            raise ValueError(f"rule for {self.target!r}: all_of must not be empty")
        for part in (*self.all_of, *self.none_of):
            if not part or part != part.lower():
                raise ValueError(
                    f"rule for {self.target!r}: substrings must be non-empty lowercase,"
                    f" got {part!r}"
                )

    def matches(self, key: str) -> bool:
        """Whether the lowercased, stripped name ``key`` satisfies the rule."""
        return all(p in key for p in self.all_of) and not any(p in key for p in self.none_of)


@dataclass(frozen=True)
class NameResolver:
    """Exact (lowercased) names and aliases first, then the first matching rule."""

    exact: Mapping[str, str] = field(default_factory=dict)
    rules: Sequence[NameRule] = ()

    def resolve(self, written: str) -> str | None:
        """The target for ``written``, or None when nothing matches (or it is empty)."""
        key = _lookup_key(written)
        if not key:
            return None
        target = self.exact.get(key)
        if target is not None:
            return target
        for rule in self.rules:
            if rule.matches(key):
                return rule.target
        return None

    def is_known(self, written: str) -> bool:
        """Whether ``written`` resolves to anything."""
        return self.resolve(written) is not None


class MatchSpec(Protocol):
    """A target-less match rule (``NameRule`` satisfies it)."""

    @property
    def all_of(self) -> Sequence[str]: ...

    @property
    def none_of(self) -> Sequence[str]: ...


class PoolNameSpec(Protocol):
    """The name facts of one pool model: display name, aliases, substring rules."""

    @property
    def name(self) -> str: ...

    @property
    def aliases(self) -> Sequence[str]: ...

    @property
    def match(self) -> Sequence[MatchSpec]: ...


@dataclass(frozen=True)
class PoolNames:
    """A plain :class:`PoolNameSpec`."""

    name: str
    aliases: tuple[str, ...] = ()
    match: tuple[NameRule, ...] = ()


def resolver_for_pool(models: Iterable[PoolNameSpec]) -> NameResolver:
    """A resolver whose targets are the pool models' ``name``.

    Exact keys are each name and alias, lowercased and stripped; rules keep the pool
    order, then each model's ``match`` order. A key claimed by two models is an error.
    """
    exact: dict[str, str] = {}
    rules: list[NameRule] = []
    for model in models:
        for written in (model.name, *model.aliases):
            key = _lookup_key(written)
            if not key:
                raise ValueError(f"model {model.name!r}: empty name or alias")
            previous = exact.setdefault(key, model.name)
            if previous != model.name:
                raise ValueError(f"name {written!r} claimed by {previous!r} and {model.name!r}")
        rules.extend(
            NameRule(target=model.name, all_of=tuple(m.all_of), none_of=tuple(m.none_of))
            for m in model.match
        )
    return NameResolver(exact=exact, rules=tuple(rules))


_QWEN = "qwen/qwen2.5-7b-instruct"
_PALMYRA = "writer/palmyra-creative-122b"
_LLAMA_70B = "meta/llama-3.1-70b-instruct"
_NEMOTRON_51B = "nvidia/llama-3.1-nemotron-51b-instruct"
_NEMOTRON_49B = "nvidia/llama-3.3-nemotron-super-49b-v1"
_CHATQA = "nvidia/llama3-chatqa-1.5-8b"
_LLAMA_8B = "meta/llama-3.1-8b-instruct"
_MISTRAL = "mistralai/mistral-7b-instruct-v0.3"
_MIXTRAL = "mistralai/mixtral-8x22b-instruct-v0.1"
_GRANITE = "ibm/granite-3.0-8b-instruct"
_GEMMA = "google/gemma-2-27b-it"

# The reference is an if/elif chain in which any name containing "llama" stops at the
# llama branch (unknown when no size matches): hence none_of=("llama",) on later rules.
_LEGACY_RULES: tuple[NameRule, ...] = (
    NameRule(_QWEN, ("qwen",)),
    NameRule(_PALMYRA, ("palmyra",)),
    NameRule(_PALMYRA, ("creative",)),
    NameRule(_LLAMA_70B, ("llama", "70b")),
    NameRule(_NEMOTRON_51B, ("llama", "51b")),
    NameRule(_NEMOTRON_49B, ("llama", "49b")),
    NameRule(_CHATQA, ("llama", "8b", "chatqa")),
    NameRule(_LLAMA_8B, ("llama", "8b")),
    NameRule(_MISTRAL, ("mistral",), ("llama",)),
    NameRule(_MIXTRAL, ("mixtral",), ("llama",)),
    NameRule(_GRANITE, ("granite",), ("llama",)),
    NameRule(_GEMMA, ("gemma",), ("llama",)),
)


def legacy_resolver() -> NameResolver:
    """The reference's ordered substring rules; targets are API model ids.

    Some targets (Nemotron, Granite) have no reference price.
    """
    return NameResolver(rules=_LEGACY_RULES)


def legacy_upstream_temperature(api_model: str) -> float:
    """Upstream temperature the reference uses: 0.1 for Gemma, else 0."""
    return 0.1 if api_model == _GEMMA else 0.0


_BEFORE_LLAMA = ("qwen", "palmyra", "creative")
_BEFORE_MISTRAL = (*_BEFORE_LLAMA, "llama")

# Order-independent rules: each excludes every substring that makes the reference pick
# an earlier branch, so for the default pool they agree with the legacy resolver and
# return None where the reference picks a model outside the pool (e.g. "llama 8b chatqa").
_DEFAULT_POOL_RULES: dict[str, tuple[NameRule, ...]] = {
    "Qwen2.5-7B-Instruct": (NameRule("Qwen2.5-7B-Instruct", ("qwen",)),),
    "LLaMA-3.1-8B-Instruct": (
        NameRule(
            "LLaMA-3.1-8B-Instruct",
            ("llama", "8b"),
            (*_BEFORE_LLAMA, "70b", "51b", "49b", "chatqa"),
        ),
    ),
    "LLaMA-3.1-70B-Instruct": (
        NameRule("LLaMA-3.1-70B-Instruct", ("llama", "70b"), _BEFORE_LLAMA),
    ),
    "Mistral-7B-Instruct": (NameRule("Mistral-7B-Instruct", ("mistral",), _BEFORE_MISTRAL),),
    "Mixtral-8x22B-Instruct": (
        NameRule("Mixtral-8x22B-Instruct", ("mixtral",), (*_BEFORE_MISTRAL, "mistral")),
    ),
    "Gemma-2-27B-Instruct": (
        NameRule(
            "Gemma-2-27B-Instruct",
            ("gemma",),
            (*_BEFORE_MISTRAL, "mistral", "mixtral", "granite"),
        ),
    ),
}


def default_pool_match_rules() -> dict[str, tuple[NameRule, ...]]:
    """Per default-pool model name, rules agreeing with the reference on that pool.

    A registry can copy these as each model's ``match`` entries; the rules are mutually
    exclusive, so the pool order does not matter.
    """
    return dict(_DEFAULT_POOL_RULES)


def default_pool_resolver() -> NameResolver:
    """Resolver for the paper's default pool; targets are the pool display names."""
    return resolver_for_pool(
        PoolNames(name=name, match=rules) for name, rules in _DEFAULT_POOL_RULES.items()
    )
