"""Where a registry model is served (its deployments) and how its failed calls are retried.

A model names either one ``endpoint`` + ``upstream_model`` (the single-deployment form, kept
working unchanged) or a list of ``deployments``, never both. Each deployment is an endpoint
and the model's id there, with a ``weight`` for the share of calls it gets and optionally its
own ``pricing`` (the model's pricing otherwise). Its ``name`` (the endpoint's name unless
given) labels it in traces, metrics and ``/ready``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router_model.registry.pricing import MISSING_PRICING, Pricing


class Deployment(BaseModel):
    """One place a model is served."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=128)]
    endpoint: str
    upstream_model: Annotated[str, Field(min_length=1)]
    weight: Annotated[float, Field(gt=0)] = 1.0
    pricing: Pricing | None = None

    @model_validator(mode="before")
    @classmethod
    def _named_after_its_endpoint(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" not in data and isinstance(data.get("endpoint"), str):
            return {**data, "name": data["endpoint"]}
        return data

    @model_validator(mode="after")
    def _priced_when_it_says(self) -> Deployment:
        if self.pricing is not None and not self.pricing.declared:
            raise ValueError(f"pricing: {MISSING_PRICING}")
        return self


class RetryPolicy(BaseModel):
    """Which failed calls of a model are retried.

    By default only what the upstream cannot have processed: connect failures (refused, DNS,
    connect timeout), 429, and 503 with ``Retry-After``. ``unsafe: true`` also retries what it
    may have processed (a reset or timeout after the request was sent, other 5xx): set it only
    for a model where a duplicated call costs nothing or is harmless, since each retry of such
    a failure may be billed again.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    unsafe: bool = False


def single_deployment(data: dict[str, Any]) -> dict[str, Any]:
    """A model's YAML with the single-deployment form (``endpoint`` + ``upstream_model``)
    turned into its one deployment; the two forms together are an error."""
    single = data.get("endpoint") is not None or data.get("upstream_model") is not None
    listed = data.get("deployments") is not None
    if single and listed:
        derived = [{"endpoint": data.get("endpoint"), "upstream_model": data.get("upstream_model")}]
        if _same_deployments(data["deployments"], derived):
            return data  # a dumped model read back: both forms, saying the same thing
        raise ValueError("give either endpoint + upstream_model or deployments, not both")
    if listed:
        return data
    if not single:
        raise ValueError("endpoint + upstream_model (or deployments) is required")
    for field in ("endpoint", "upstream_model"):
        if data.get(field) is None:
            raise ValueError(f"{field} is missing (give endpoint + upstream_model, or deployments)")
    deployment = {"endpoint": data["endpoint"], "upstream_model": data["upstream_model"]}
    return {**data, "deployments": [deployment]}


def _same_deployments(listed: Any, derived: list[dict[str, Any]]) -> bool:
    if not isinstance(listed, list | tuple) or len(listed) != 1:
        return False
    first = listed[0]
    fields = first.model_dump() if isinstance(first, Deployment) else first
    return isinstance(fields, dict) and all(fields.get(k) == v for k, v in derived[0].items())
