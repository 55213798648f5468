"""What a model costs: USD per one million tokens, and THE function that prices a call.

A registry model must say what it costs: both prices, or ``free: true``. No model is billed at
$0 by omission (``registry check`` and loading refuse a model without pricing).
``cached_input_per_1m``, when declared, is what prompt tokens served from the upstream's
prefix cache cost; without it they cost ``input_per_1m`` like any other prompt token.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router_model.usage import Usage

NonNegative = Annotated[float, Field(ge=0)]


class Pricing(BaseModel):
    """USD per one million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_1m: NonNegative = 0.0
    output_per_1m: NonNegative = 0.0
    cached_input_per_1m: NonNegative | None = None
    free: bool = False
    """The model costs nothing, and says so (a model without prices is an error)."""

    @model_validator(mode="after")
    def _free_has_no_prices(self) -> Pricing:
        if self.free and (self.input_per_1m or self.output_per_1m or self.cached_input_per_1m):
            raise ValueError("free: true and non-zero prices: give one or the other")
        return self

    @property
    def declared(self) -> bool:
        """Whether it says what the model costs: ``free``, or both prices written."""
        return self.free or {"input_per_1m", "output_per_1m"} <= self.model_fields_set

    def cost_usd(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """The price of one call; ``cached_tokens`` (part of ``prompt_tokens``) are billed at
        ``cached_input_per_1m`` when it is declared."""
        cached_price = self.cached_input_per_1m
        cached = min(max(cached_tokens, 0), prompt_tokens) if cached_price is not None else 0
        usd_per_1m = (
            (prompt_tokens - cached) * self.input_per_1m
            + cached * (cached_price or 0.0)
            + completion_tokens * self.output_per_1m
        )
        return usd_per_1m / 1e6

    def cost_of(self, usage: Usage) -> float:
        return self.cost_usd(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)


MISSING_PRICING = (
    "pricing is missing: give pricing: {input_per_1m: ..., output_per_1m: ...} (USD per 1M "
    "tokens), or pricing: {free: true} for a model that costs nothing"
)
