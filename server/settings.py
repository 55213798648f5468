"""Process settings, from ``ROUTER_R1_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from server.operations.settings import OperationsSettings


class Settings(OperationsSettings):
    """Everything the gateway process needs; the registry file holds models and profiles.

    Shared state, API keys, cache, traces and registry reload: :class:`OperationsSettings`.
    """

    model_config = SettingsConfigDict(
        env_prefix="ROUTER_R1_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    registry: Path = Path("model_registry.yaml")
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    log_level: str = "info"

    max_request_bytes: Annotated[int, Field(gt=0)] = 1_000_000
    max_question_chars: Annotated[int, Field(gt=0)] = 32_000

    upstream_total_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    upstream_passthrough_timeout_s: Annotated[float, Field(gt=0)] = 600.0
    upstream_max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    upstream_backoff_s: Annotated[float, Field(ge=0)] = 0.25
    engine_connect_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    engine_read_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    ready_timeout_s: Annotated[float, Field(gt=0)] = 2.0
