"""``ROUTER_R1_METRICS_*``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    enabled: bool = True
    """Serve ``GET /metrics`` (the metrics are recorded either way)."""
