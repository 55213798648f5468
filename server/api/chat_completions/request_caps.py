"""The caps a client sets on its own router-profile request: lower, never higher, than the
profile's (``limits.max_cost_usd``, ``limits.max_upstream_calls``).

Either in the body (``"router": {"max_cost_usd": 0.01, "max_upstream_calls": 3}``) or in
headers (``x-router-max-cost-usd``, ``x-router-max-upstream-calls``, for clients that cannot
add body fields); when both are given the lower value wins. Invalid values are a 400 naming
the field; the episode applies them with :mod:`router_model.episode.caps`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import bad_request

COST_HEADER = "x-router-max-cost-usd"
CALLS_HEADER = "x-router-max-upstream-calls"


class ClientCaps(BaseModel):
    """The caps in the ``router`` field of a chat request (its other fields belong to other
    features, e.g. ``cache``: ignored here)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    max_cost_usd: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    max_upstream_calls: Annotated[int, Field(ge=0)] | None = None


def _lower(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def client_caps(body: Mapping[str, Any], headers: Mapping[str, str]) -> ClientCaps:
    """The caps of this request (400 for an invalid one)."""
    field = body.get("router")
    if field is None:
        field = {}
    if not isinstance(field, dict):
        raise bad_request("router: must be an object", param="router")
    from_header = {
        name: headers[header]
        for name, header in (("max_cost_usd", COST_HEADER), ("max_upstream_calls", CALLS_HEADER))
        if header in headers
    }
    caps = _validate(field, "router")
    header_caps = _validate(from_header, "header")
    calls = _lower(caps.max_upstream_calls, header_caps.max_upstream_calls)
    return ClientCaps(
        max_cost_usd=_lower(caps.max_cost_usd, header_caps.max_cost_usd),
        max_upstream_calls=None if calls is None else int(calls),
    )


def _validate(values: Mapping[str, Any], where: str) -> ClientCaps:
    try:
        return ClientCaps.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        if where == "header":
            param = COST_HEADER if name == "max_cost_usd" else CALLS_HEADER
            raise bad_request(f"{param}: {first['msg']}", param=param) from None
        raise bad_request(f"router.{name}: {first['msg']}", param=f"router.{name}") from None
