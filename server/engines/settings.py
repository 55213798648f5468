"""How the gateway's one shared HTTP client talks to policy engines: ``ROUTER_R1_ENGINE_*``.

A registry endpoint's own ``connect_timeout_s``/``read_timeout_s`` bound each engine request;
these are the client's defaults and its connection pool.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PositiveFloat = Annotated[float, Field(gt=0)]


class EngineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout_s: PositiveFloat = 5.0
    read_timeout_s: PositiveFloat = 120.0
    max_connections: Annotated[int, Field(gt=0)] = 256
    max_keepalive_connections: Annotated[int, Field(gt=0)] = 64
