"""Registry hot reload: poll ``model_registry.yaml`` and swap in every valid edit.

Every ``interval_s`` the file's (mtime, size, inode) is checked; when it changed, the file is
read and, if its content hash is new, parsed and validated (schema, then every profile's
policy prompt and name resolver are built) off the event loop. A valid registry is swapped in
with :meth:`RegistryHolder.swap` (requests started earlier finish on the registry they began
with: runners are keyed by registry identity). An invalid one keeps the last good registry,
logs one error per distinct bad content, sets :attr:`last_error` (shown by ``/ready``) and the
``router_r1_registry_reload_failing`` gauge. Each replica (and worker) reloads on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from router_model.registry import Registry, RegistryError, parse_registry
from server.metrics.metrics import Metrics

logger = logging.getLogger("router_r1.registry")

_Signature = tuple[int, int, int]


def _signature(path: Path) -> _Signature | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


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


class RegistryWatcher:
    """Polls one registry file and applies valid edits through ``apply``."""

    def __init__(
        self,
        path: Path,
        apply: Callable[[Registry], None],
        metrics: Metrics,
        *,
        interval_s: float = 1.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self._apply = apply
        self._metrics = metrics
        self._interval_s = interval_s
        self._environ = environ
        self._signature = _signature(path)
        self._digest = self._read_digest()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.last_reload_at: float | None = None  # Unix time of the last applied edit
        self.reloads = 0

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="registry-watch")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check()
            except Exception:  # never let the watcher die
                logger.exception("registry watch: unexpected error")

    async def check(self) -> bool:
        """One poll; True when a new registry was swapped in."""
        signature = _signature(self.path)
        if signature is None or signature == self._signature:
            return False
        self._signature = signature
        try:
            data = await asyncio.to_thread(self.path.read_bytes)
        except OSError:
            return False  # being replaced: the next poll sees the new file
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return False
        self._digest = digest
        try:
            registry = await asyncio.to_thread(load_registry, self.path, data, self._environ)
        except RegistryError as exc:
            self.last_error = str(exc)
            self._metrics.registry_reloads("failed").inc()
            self._metrics.registry_reload_failing.set(1)
            logger.error("registry reload failed, still serving the last good registry: %s", exc)
            return False
        self._apply(registry)
        self.last_error = None
        self.last_reload_at = time.time()
        self.reloads += 1
        self._metrics.registry_reloads("ok").inc()
        self._metrics.registry_reload_failing.set(0)
        logger.info(
            "registry reloaded from %s: %d profiles, %d models",
            self.path,
            len(registry.profiles),
            len(registry.models),
        )
        return True
