"""veRL 0.9.1 agent loop running the Router-R1 rollout core (imports veRL: GPU runs only).

Registered with ``actor_rollout_ref.rollout.agent.agent_loop_config_path`` pointing at a file
``router-r1 train`` writes::

    - name: router_r1
      _target_: router_model.training.verl.agent_loop.RouterR1AgentLoop
      registry: /abs/path/model_registry.yaml
      profile: router-r1

veRL instantiates the loop once per trajectory (``hydra.utils.instantiate``) inside each
``AgentLoopWorker`` actor; the registry, tokenizer adapter and upstream pool are built once
per worker process and event loop (:class:`~router_model.training.verl.shared.SharedRollout`).
"""

from __future__ import annotations

from typing import Any

from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    register,
)

from router_model.training.verl.episode import run_episode
from router_model.training.verl.shared import SharedRollout

AGENT_NAME = "router_r1"


@register(AGENT_NAME)
class RouterR1AgentLoop(AgentLoopBase):  # type: ignore[misc]
    """``run`` plays one Router-R1 episode through veRL's server manager."""

    def __init__(
        self,
        *args: Any,
        registry: str = "model_registry.yaml",
        profile: str = "router-r1",
        upstreams: str = "",
        upstream_total_timeout_s: float = 60.0,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("name", None)  # the config entry's own name, passed along by hydra
        super().__init__(*args, **kwargs)
        self._registry_path = registry
        self._profile = profile
        self._upstreams = upstreams
        self._upstream_total_timeout_s = upstream_total_timeout_s

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        shared = await SharedRollout.get(
            self._registry_path,
            self._profile,
            self.tokenizer,
            upstreams=self._upstreams,
            upstream_total_timeout_s=self._upstream_total_timeout_s,
        )
        fields = await run_episode(
            shared.core,
            self.server_manager,
            sampling_params,
            kwargs,
            prompt_length=int(self.rollout_config.prompt_length),
            response_length=int(self.rollout_config.response_length),
        )
        return AgentLoopOutput(
            prompt_ids=fields.prompt_ids,
            response_ids=fields.response_ids,
            response_mask=fields.response_mask,
            response_logprobs=fields.response_logprobs,
            num_turns=fields.num_turns,
            metrics=AgentLoopMetrics(generate_sequences=fields.generate_s),
            extra_fields=fields.extra_fields,
        )
