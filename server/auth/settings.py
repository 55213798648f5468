"""Settings of API keys and limits: ``ROUTER_R1_API_*`` and ``ROUTER_R1_LIMITS_*``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class ApiKeySettings(BaseModel):
    """``ROUTER_R1_API_KEYS_FILE``, ``ROUTER_R1_API_KEYS``,
    ``ROUTER_R1_API_KEYS_RELOAD_INTERVAL_S``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    keys_file: Path | None = None
    """YAML or JSON key file (see server/auth/keys.py); no keys at all = open mode."""
    keys: str | None = None
    """The same entries as a JSON list, added to the file's."""
    keys_reload_interval_s: Annotated[float, Field(ge=0)] = 1.0
    """How often the key file is polled for edits (keys added, revoked, limits changed); 0
    turns that off."""


class LimitSettings(BaseModel):
    """``ROUTER_R1_LIMITS_*``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    fail_open: bool = True
    """When the shared store is unreachable: admit requests without limits (True), or refuse
    them with 503 (False). Spend that cannot be recorded is logged and counted either way."""
