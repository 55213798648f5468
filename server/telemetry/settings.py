"""``ROUTER_R1_TELEMETRY_*``: what the OpenTelemetry spans may carry.

Whether tracing is on, where spans go and how they are sampled are the standard ``OTEL_*``
variables (:mod:`.config`), so the gateway is configured like any OpenTelemetry program.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class TelemetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    capture_content: bool = False
    """Put prompts, the policy's reasoning, sub-queries and replies into span events
    (``gen_ai.client.inference.operation.details``). Off by default: trace backends are often
    readable by more people than the gateway's own trace store."""
