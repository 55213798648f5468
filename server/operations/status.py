"""What ``/ready`` shows about the operations layer (informational: a Redis outage or an invalid
registry edit does not make the gateway unready; it keeps serving)."""

from __future__ import annotations

from typing import Any

from server.file_watch import FileWatcher
from server.operations.bundle import Operations


async def operations_status(ops: Operations) -> dict[str, Any]:
    return {
        "registry_reload": _reload_status(ops.watcher),
        "store": {"backend": ops.store.backend, "up": await ops.store.ping()},
        "auth": {
            "open_mode": ops.access.open_mode,
            "keys": len(ops.access.keys),
            "reload": _reload_status(ops.key_watcher),
        },
    }


def _reload_status(watcher: FileWatcher[Any] | None) -> dict[str, Any]:
    if watcher is None:
        return {"watching": False}
    return {"watching": True, **watcher.status()}
