"""API key file hot reload: keys added, revoked or given new limits apply without a restart.

Each valid edit replaces the :class:`KeyRing` that :class:`AccessControl` looks keys up in
(requests already admitted finish as they began). An invalid edit keeps the last good keys (see
:mod:`server.file_watch`), and so does an edit that leaves no key at all: that would turn a
gateway that requires keys into an open one, which only a restart may do.
"""

from __future__ import annotations

from pathlib import Path

from server.auth.access import AccessControl
from server.auth.keys import KeyFileError, KeyRing
from server.file_watch import FileWatcher, InvalidEdit
from server.metrics.metrics import Metrics


class KeyFileWatcher(FileWatcher[KeyRing]):
    what = "API key file"

    def __init__(
        self,
        path: Path,
        access: AccessControl,
        metrics: Metrics,
        *,
        inline: str | None = None,
        interval_s: float = 1.0,
    ) -> None:
        """``inline``: the ``ROUTER_R1_API_KEYS`` entries, kept alongside the file's."""
        super().__init__(
            path,
            reloads=metrics.api_key_reloads,
            failing=metrics.api_key_reload_failing,
            interval_s=interval_s,
        )
        self._access = access
        self._inline = inline

    def load(self, data: bytes) -> KeyRing:
        try:
            keys = KeyRing.parse(data, self.path, self._inline)
        except KeyFileError as exc:
            raise InvalidEdit(str(exc)) from None
        if keys.open_mode and not self._access.open_mode:
            raise InvalidEdit(
                f"{self.path}: no keys left: that would open the gateway to anyone; the current "
                "keys stay in use (restart the gateway to run it in open mode)"
            )
        return keys

    def apply(self, value: KeyRing) -> str:
        was_open = self._access.open_mode
        self._access.keys = value
        change = " (open mode ended)" if was_open else ""
        return f"{len(value)} keys{change}"
