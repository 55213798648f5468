"""What ``/ready`` shows about operations (informational: a Redis outage or an invalid
registry edit does not make the gateway unready; it keeps serving)."""

from __future__ import annotations

from typing import Any

from server.file_watch import FileWatcher
from server.state import AppState


async def operations_status(state: AppState) -> dict[str, Any]:
    return {
        "registry_reload": _reload_status(state.registry_watcher),
        "store": {"backend": state.store.backend, "up": await state.store.ping()},
        "upstream": {"breakers": state.upstream.breaker_states()},
        "auth": {
            "open_mode": state.access.open_mode,
            "keys": len(state.access.keys),
            "reload": _reload_status(state.key_watcher),
        },
    }


def _reload_status(watcher: FileWatcher[Any] | None) -> dict[str, Any]:
    if watcher is None:
        return {"watching": False}
    return {"watching": True, **watcher.status()}
