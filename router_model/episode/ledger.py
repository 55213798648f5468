"""Running sums of tokens, money and waiting time for one episode."""

from __future__ import annotations

from dataclasses import dataclass, field

from router_model.episode.trace import RouterTotals
from router_model.registry import Pricing
from router_model.rewards.cost import raw_cost


@dataclass
class Ledger:
    """What an episode has spent so far; :meth:`totals` turns it into the trace totals."""

    policy_pricing: Pricing = field(default_factory=Pricing)
    policy_prompt_tokens: int = 0
    policy_completion_tokens: int = 0
    policy_cost_usd: float = 0.0
    upstream_prompt_tokens: int = 0
    upstream_completion_tokens: int = 0
    upstream_cost_usd: float = 0.0
    raw_cost: float = 0.0
    policy_wait_s: float = 0.0
    upstream_wait_s: float = 0.0
    routes: int = 0
    models: list[str] = field(default_factory=list)
    upstream_calls: int = 0  # requests sent upstream, retries included (caps count them)

    def add_policy_turn(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Count one policy generation; returns its cost in USD."""
        cost = self.policy_pricing.cost_usd(prompt_tokens, completion_tokens)
        self.policy_prompt_tokens += prompt_tokens
        self.policy_completion_tokens += completion_tokens
        self.policy_cost_usd += cost
        return cost

    def add_route(self, model: str | None) -> None:
        """Count one executed route (an unknown model counts, with no model)."""
        self.routes += 1
        if model is not None and model not in self.models:
            self.models.append(model)

    def add_upstream(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        usd_per_1m_output: float,
        *,
        attempts: int = 1,
    ) -> None:
        """Count one upstream call (``attempts`` requests sent: 0 for a cache hit); ``raw_cost``
        uses completion tokens x output price."""
        self.upstream_calls += attempts
        self.upstream_prompt_tokens += prompt_tokens
        self.upstream_completion_tokens += completion_tokens
        self.upstream_cost_usd += cost_usd
        self.raw_cost += raw_cost([(completion_tokens, usd_per_1m_output)])

    @property
    def cost_usd(self) -> float:
        return self.policy_cost_usd + self.upstream_cost_usd

    def totals(self, total_s: float) -> RouterTotals:
        policy_ms = self.policy_wait_s * 1000
        upstream_ms = self.upstream_wait_s * 1000
        total_ms = total_s * 1000
        return RouterTotals(
            routes=self.routes,
            models=list(self.models),
            upstream_calls=self.upstream_calls,
            cost_usd=self.cost_usd,
            policy_cost_usd=self.policy_cost_usd,
            upstream_cost_usd=self.upstream_cost_usd,
            raw_cost=self.raw_cost,
            policy_prompt_tokens=self.policy_prompt_tokens,
            policy_completion_tokens=self.policy_completion_tokens,
            upstream_prompt_tokens=self.upstream_prompt_tokens,
            upstream_completion_tokens=self.upstream_completion_tokens,
            policy_time_ms=policy_ms,
            upstream_time_ms=upstream_ms,
            overhead_ms=max(total_ms - policy_ms - upstream_ms, 0.0),
            total_ms=total_ms,
        )
