"""The gateway's one settings model: ``ROUTER_R1_*`` environment variables (or a ``.env`` file).

Sections are nested models; a variable is ``ROUTER_R1_<SECTION>_<FIELD>`` (the first ``_``
after the prefix separates the section: ``ROUTER_R1_REDIS_URL`` is ``redis.url``,
``ROUTER_R1_UPSTREAM_MAX_RETRIES`` is ``upstream.max_retries``) and top-level fields are
``ROUTER_R1_<FIELD>`` (``ROUTER_R1_REGISTRY``). Each section is owned by the package that uses
it; this module only composes them. README.md lists every variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.auth.settings import ApiKeySettings, LimitSettings
from server.engines.settings import EngineSettings
from server.logs import LogSettings
from server.metrics.settings import MetricsSettings
from server.operations.traces import TraceSettings
from server.store.settings import RedisSettings
from server.telemetry.settings import TelemetrySettings
from server.upstream.settings import CacheSettings, UpstreamSettings

ENV_PREFIX = "ROUTER_R1_"
PositiveFloat = Annotated[float, Field(gt=0)]


class HttpSettings(BaseModel):
    """The HTTP server (``ROUTER_R1_HTTP_*``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    keepalive_timeout_s: PositiveFloat = 75.0
    """How long an idle client connection is kept open. Above the 60 s idle timeout of common
    load balancers (AWS ALB, nginx, GCP), so the balancer closes first and never reuses a
    connection the gateway is closing (clients would see resets)."""
    body_timeout_s: PositiveFloat = 30.0
    """A request body must arrive within this time (then 408): a half-sent body cannot hold a
    connection and a request slot forever."""
    graceful_shutdown_s: PositiveFloat = 30.0
    """On SIGTERM, requests in flight get this long to finish."""


class StreamSettings(BaseModel):
    """Streamed responses (``ROUTER_R1_STREAM_*``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    keepalive_interval_s: PositiveFloat = 15.0
    """An SSE comment is sent when a stream has been silent this long (a route call, a long
    prefill): proxies cut streams that stay silent for 60 s."""
    reasoning_fields: Literal["both", "reasoning", "reasoning_content"] = "both"
    """Where the policy's reasoning goes in messages and deltas: ``reasoning`` (vLLM,
    OpenRouter), ``reasoning_content`` (Open WebUI, LibreChat, DeepSeek), or both."""


class Settings(BaseSettings):
    """Everything the gateway process needs; the registry file holds models and profiles."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        use_attribute_docstrings=True,
    )

    registry: Path = Path("model_registry.yaml")
    """The registry file (models and router profiles); its directory is watched for edits."""
    registry_reload_interval_s: Annotated[float, Field(ge=0)] = 1.0
    """How often the registry file is polled for edits; 0 turns hot reload off."""
    host: str = "127.0.0.1"
    """Address `router-r1 serve` binds (``0.0.0.0`` to accept connections from other hosts)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """Port `router-r1 serve` listens on."""
    max_request_bytes: Annotated[int, Field(gt=0)] = 1_000_000
    """A larger request body is refused with 413 before it is parsed."""
    max_question_chars: Annotated[int, Field(gt=0)] = 32_000
    """A router profile's question longer than this is refused with 400 (the policy's context is
    small)."""
    ready_timeout_s: PositiveFloat = 2.0
    """Bounds each readiness probe of a policy engine (``GET /ready``)."""

    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    stream: StreamSettings = StreamSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    engine: EngineSettings = EngineSettings()
    redis: RedisSettings = RedisSettings()
    api: ApiKeySettings = ApiKeySettings()
    limits: LimitSettings = LimitSettings()
    cache: CacheSettings = CacheSettings()
    trace: TraceSettings = TraceSettings()
    metrics: MetricsSettings = MetricsSettings()
    telemetry: TelemetrySettings = TelemetrySettings()

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from names as the environment spells them without the prefix
        (``{"upstream_max_retries": 0, "registry": ...}``), for code that sets a few knobs."""
        return cls(**nest_flat(values))


def _sections() -> dict[str, type[BaseModel]]:
    sections: dict[str, type[BaseModel]] = {}
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections[name] = annotation
    return sections


def nest_flat(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"redis_url": u}`` → ``{"redis": {"url": u}}``, by the same rule as the environment."""
    sections = _sections()
    nested: dict[str, Any] = {}
    for name, value in values.items():
        section, _, field = name.partition("_")
        if name not in Settings.model_fields and section in sections and field:
            nested.setdefault(section, {})[field] = value
        else:
            nested[name] = value
    return nested


def variable_name(location: tuple[int | str, ...]) -> str:
    """The environment variable of a validation error's location (``("redis", "url")``)."""
    return ENV_PREFIX + "_".join(str(part) for part in location if isinstance(part, str)).upper()


class SettingsError(Exception):
    """An invalid setting; the message is one line naming the variable."""


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (``overrides`` win, flat names); :class:`SettingsError`
    with one line per bad variable instead of pydantic's multi-line report."""
    try:
        return Settings.from_flat(overrides)
    except ValidationError as exc:
        problems = [
            f"{variable_name(error['loc'])}: {error['msg']}"
            + (f" (got {error['input']!r})" if isinstance(error.get("input"), str) else "")
            for error in exc.errors()
        ]
        raise SettingsError("; ".join(problems)) from None


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value) or "(empty)"
    return str(value)


def _row(variable: str, field: Any) -> str:
    description = " ".join((field.description or "").split()).replace("|", "\\|")
    return f"| `{variable}` | `{_default(field.default)}` | {description} |"


def settings_table() -> str:
    """Every ``ROUTER_R1_*`` variable with its default and description, as the Markdown table
    the README carries (``python -m server.settings`` prints it; a test keeps them equal)."""
    rows = ["| variable | default | what it does |", "| --- | --- | --- |"]
    sections = _sections()
    for name, field in Settings.model_fields.items():
        section = sections.get(name)
        if section is None:
            rows.append(_row(variable_name((name,)), field))
            continue
        for sub, subfield in section.model_fields.items():
            rows.append(_row(variable_name((name, sub)), subfield))
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
