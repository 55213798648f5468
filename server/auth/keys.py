"""API keys: what the operator configures (hashed keys with limits), and looking one up.

A key file is YAML or JSON: a list of entries, or ``{"keys": [...]}``. Each entry::

    - id: team-a                # names the key in logs, traces and the shared store
      sha256: 9f86d0…           # hex SHA-256 of the key; the key itself is never stored
      requests_per_minute: 60   # optional limits, shared by every replica (Redis)
      tokens_per_minute: 200000
      budget_usd: 25.0
      budget_period: month      # hour | day | week | month (UTC calendar)
      admin: false              # an admin key may read every request's trace
      profiles: [router-r1]     # optional: the router profiles it may use (absent: all)
      models: []                # optional: the registry models it may call directly (absent:
                                # all; [] none); others are a 403, and /v1/models hides them

``router-r1 keys new ID`` prints a fresh key and its entry. ``ROUTER_R1_API_KEYS`` holds the
same entries as a JSON list. No entries at all = open mode (anyone may call; a warning is
logged at startup).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.store.base import Limits
from server.store.windows import BudgetPeriod

KEY_PREFIX = "rr1-"


class KeyFileError(Exception):
    """The key configuration cannot be used; the message is one line."""


class ApiKey(BaseModel):
    """One configured key (its hash, never the key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    admin: bool = False
    requests_per_minute: Annotated[int, Field(gt=0)] | None = None
    tokens_per_minute: Annotated[int, Field(gt=0)] | None = None
    budget_usd: Annotated[float, Field(ge=0)] | None = None
    budget_period: BudgetPeriod = "month"
    profiles: tuple[str, ...] | None = None
    """The router profiles this key may use; None = every profile."""
    models: tuple[str, ...] | None = None
    """The registry models this key may call directly (passthrough); None = every model."""

    @property
    def limits(self) -> Limits:
        return Limits(self.requests_per_minute, self.tokens_per_minute, self.budget_usd)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """The configured keys, looked up by the hash of the presented key."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._by_hash: dict[str, ApiKey] = {}
        ids: set[str] = set()
        for key in keys:
            if key.id in ids:
                raise KeyFileError(f"API key id {key.id!r} is configured twice")
            if key.sha256 in self._by_hash:
                raise KeyFileError(
                    f"API keys {key.id!r} and {self._by_hash[key.sha256].id!r} have the same hash"
                )
            ids.add(key.id)
            self._by_hash[key.sha256] = key

    @property
    def open_mode(self) -> bool:
        return not self._by_hash

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, presented: str) -> ApiKey | None:
        return self._by_hash.get(hash_key(presented))

    @classmethod
    def load(cls, path: Path | None = None, inline: str | None = None) -> KeyRing:
        """The keys of the file at ``path`` plus the JSON list ``inline``."""
        if path is None:
            return cls.parse(None, inline=inline)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot read the key file ({exc.strerror})") from None
        return cls.parse(data, path, inline)

    @classmethod
    def parse(
        cls, data: bytes | None, source: Path | None = None, inline: str | None = None
    ) -> KeyRing:
        """The keys of key file content ``data`` (read from ``source``) plus ``inline``'s."""
        entries: list[ApiKey] = []
        if data is not None:
            try:
                parsed = yaml.safe_load(data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise KeyFileError(f"{source}: not UTF-8 text ({exc.reason})") from None
            except yaml.YAMLError as exc:
                raise KeyFileError(f"{source}: invalid YAML/JSON: {_one_line(str(exc))}") from None
            entries += _entries(parsed, str(source))
        if inline:
            try:
                listed = orjson.loads(inline)
            except orjson.JSONDecodeError as exc:
                raise KeyFileError(f"ROUTER_R1_API_KEYS: invalid JSON: {exc}") from None
            entries += _entries(listed, "ROUTER_R1_API_KEYS")
        return cls(entries)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _entries(data: Any, source: str) -> list[ApiKey]:
    if isinstance(data, dict) and set(data) == {"keys"}:
        data = data["keys"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise KeyFileError(f"{source}: expected a list of keys (or {{keys: [...]}})")
    keys: list[ApiKey] = []
    for index, entry in enumerate(data):
        try:
            keys.append(ApiKey.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "entry"
            raise KeyFileError(f"{source}: keys[{index}].{field}: {first['msg']}") from None
    return keys
