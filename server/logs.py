"""The gateway's log lines: time, level, logger and request id on every line; text or JSON.

``router-r1 serve`` hands :func:`logging_config` to uvicorn, which applies it in every worker
process, uvicorn's own loggers included (so startup lines and errors look like ours). The
request id comes from a context variable the request-id middleware sets for the request's
task (tasks it starts inherit it), so a line logged anywhere while serving a request carries
that request's id; other lines show ``-``.

One access line per request (logger ``router_r1.access``, written when the request is closed:
status, latency, profile or model, routes, cost) replaces uvicorn's access log, which knows
neither the route nor the cost.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

request_id_var: ContextVar[str] = ContextVar("router_r1_request_id", default="-")

LogLevel = Literal["critical", "error", "warning", "info", "debug"]

# LogRecord attributes of the logging module itself (anything else was passed in ``extra``)
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "request_id", "color_message"}
)


class LogSettings(BaseModel):
    """``ROUTER_R1_LOG_LEVEL``, ``ROUTER_R1_LOG_FORMAT``, ``ROUTER_R1_LOG_ACCESS``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    level: LogLevel = "info"
    """Lowest level written (``debug`` adds, for example, spend or traces not written while Redis
    was away)."""
    format: Literal["text", "json"] = "text"
    """``text``: time, level, logger, [request id], message, key=value fields; ``json``: one object
    per line."""
    access: bool = True
    """One ``router_r1.access`` line per request."""


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (``%(request_id)s``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


class TextFormatter(logging.Formatter):
    """``2026-12-02T05:15:30.123Z INFO router_r1.reload [req-id] message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_timestamp(record)} {record.levelname} {record.name} "
            f"[{getattr(record, 'request_id', '-')}] {record.getMessage()}"
        )
        fields = _extra_fields(record)
        if fields:
            line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c.isspace() for c in text)) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
            **_extra_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(settings: LogSettings) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for the gateway and uvicorn's loggers."""
    formatter = "json" if settings.format == "json" else "text"
    level = settings.level.upper()
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": formatter,
        "filters": ["request_id"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "text": {"()": TextFormatter},
            "json": {"()": JsonFormatter},
        },
        "handlers": {"stderr": handler},
        "loggers": {
            "router_r1": {"level": level},
            "uvicorn": {"level": level},
            "uvicorn.error": {"level": level},
            # replaced by router_r1.access (which knows the route and the cost)
            "uvicorn.access": {"level": "WARNING", "propagate": False, "handlers": []},
        },
        "root": {"level": level, "handlers": ["stderr"]},
    }
