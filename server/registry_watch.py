"""Registry hot reload: poll ``model_registry.yaml`` and swap in every valid edit.

A valid edit is fully validated first (schema, then every profile's policy prompt and name
resolver) and swapped in with :meth:`RegistryHolder.swap`: requests started earlier finish on
the registry they began with (runners are keyed by registry identity). An invalid one keeps the
last good registry (see :mod:`server.file_watch`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from router_model.registry import Registry, RegistryError, parse_registry
from server.file_watch import FileWatcher, InvalidEdit
from server.metrics.metrics import Metrics


def load_registry(path: Path, data: bytes, environ: Mapping[str, str] | None = None) -> Registry:
    """Parse and fully validate registry file content (raises :class:`RegistryError`)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: not UTF-8 text ({exc.reason})") from None
    registry = Registry(parse_registry(text, str(path), environ), str(path))
    for profile in registry.profiles:
        try:
            registry.policy_template(profile)
            registry.resolver(profile)
        except ValueError as exc:
            raise RegistryError(f"{path}: profile {profile.name!r}: {exc}") from None
    return registry


class RegistryWatcher(FileWatcher[Registry]):
    """Polls one registry file and applies valid edits through ``apply_registry``."""

    what = "registry"

    def __init__(
        self,
        path: Path,
        apply_registry: Callable[[Registry], None],
        metrics: Metrics,
        *,
        interval_s: float = 1.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            path,
            reloads=metrics.registry_reloads,
            failing=metrics.registry_reload_failing,
            interval_s=interval_s,
        )
        self._apply_registry = apply_registry
        self._environ = environ

    def load(self, data: bytes) -> Registry:
        try:
            return load_registry(self.path, data, self._environ)
        except RegistryError as exc:
            raise InvalidEdit(str(exc)) from None

    def apply(self, value: Registry) -> str:
        self._apply_registry(value)
        return f"{len(value.profiles)} profiles, {len(value.models)} models"
