"""What a registry file must be before it is served: complete, not just valid.

The schema accepts a file with no profiles and no models (``{}``; an empty file parses to
it), which is exactly what a file being written in place looks like: truncated first, then
written, perhaps in pieces (models before profiles). Serving it would answer 404 to every
request. So a file that defines no router profile or no model is refused unless it says
``allow_empty: true``; and every profile's policy prompt and name resolver are built once
here, so a file that validates but cannot be served is refused up front too. The gateway
(startup and hot reload) and ``router-r1 registry check`` apply the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from router_model.registry.loader import RegistryError, parse_registry
from router_model.registry.registry import Registry
from router_model.registry.schema import RegistryFile


def emptiness(spec: RegistryFile) -> str | None:
    """Why ``spec`` looks truncated or half-written (None when it is complete or says
    ``allow_empty: true``)."""
    if spec.allow_empty:
        return None
    missing = [
        what for what, items in (("profile", spec.profiles), ("model", spec.models)) if not items
    ]
    if not missing:
        return None
    return (
        f"defines no router {' and no '.join(missing)} (an empty, truncated or half-written "
        "file?); write `allow_empty: true` at the top level to serve it anyway"
    )


def check_servable(registry: Registry) -> Registry:
    """``registry`` if it may be served, else :class:`RegistryError` (one line)."""
    source = registry.source
    problem = emptiness(registry.spec)
    if problem is not None:
        raise RegistryError(f"{source}: {problem}")
    for profile in registry.profiles:
        try:
            registry.policy_template(profile)
            registry.resolver(profile)
        except ValueError as exc:
            raise RegistryError(f"{source}: profile {profile.name!r}: {exc}") from None
    return registry


def load_servable(
    path: Path, data: bytes | None = None, environ: Mapping[str, str] | None = None
) -> Registry:
    """Read (or take ``data``), validate and :func:`check_servable` a registry file."""
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RegistryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return check_servable(Registry(parse_registry(text, str(path), environ), str(path)))
