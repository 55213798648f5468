"""Registry hot reload: poll ``model_registry.yaml`` and swap in every valid, stable edit.

An edit is applied once its content is stable across two polls (:mod:`server.file_watch`)
and it is servable (:mod:`router_model.registry.checks`: the schema, every profile's policy
prompt and name resolver, and at least one profile and one model unless the file says
``allow_empty: true``). It is swapped in with :meth:`RegistryHolder.swap`: requests started
earlier finish on the registry they began with (runners are keyed by registry identity). Any
other edit keeps the last good registry and is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from router_model.registry import Registry, RegistryError
from router_model.registry.checks import load_servable
from server.file_watch import FileWatcher, InvalidEdit
from server.metrics.metrics import Metrics


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
            return load_servable(self.path, data, self._environ)
        except RegistryError as exc:
            raise InvalidEdit(str(exc)) from None

    def apply(self, value: Registry) -> str:
        self._apply_registry(value)
        return f"{len(value.profiles)} profiles, {len(value.models)} models"
