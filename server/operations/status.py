"""What ``/ready`` shows about the operations layer (informational: a Redis outage or an invalid
registry edit does not make the gateway unready; it keeps serving)."""

from __future__ import annotations

from typing import Any

from server.operations.bundle import Operations


async def operations_status(ops: Operations) -> dict[str, Any]:
    watcher = ops.watcher
    reload: dict[str, Any] = {"watching": watcher is not None}
    if watcher is not None:
        reload.update(
            {
                "path": str(watcher.path),
                "reloads": watcher.reloads,
                "last_reload_at": watcher.last_reload_at,
                "last_error": watcher.last_error,
            }
        )
    return {
        "registry_reload": reload,
        "store": {"backend": ops.store.backend, "up": await ops.store.ping()},
        "auth": {"open_mode": ops.access.open_mode},
    }
