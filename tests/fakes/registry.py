"""The project's registry file, loaded without the environment, and profile variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from router_model.registry import Registry, RouterProfile

REPO_ROOT = Path(__file__).resolve().parents[2]
REGISTRY_FILE = REPO_ROOT / "model_registry.yaml"
PROFILE = "router-r1"


def default_registry() -> Registry:
    """``model_registry.yaml`` with every ``${VAR:-default}`` at its default."""
    return Registry.from_file(REGISTRY_FILE, environ={})


def router_profile(registry: Registry, **limits: Any) -> RouterProfile:
    """The ``router-r1`` profile with some ``limits`` replaced (same name, so the
    registry's templates and resolvers apply to it)."""
    profile = registry.profile(PROFILE)
    assert profile is not None, f"{REGISTRY_FILE} has no {PROFILE!r} profile"
    if not limits:
        return profile
    return profile.model_copy(update={"limits": profile.limits.model_copy(update=limits)})
