"""Checks against veRL 0.9.1's REAL classes, run in the veRL venv by ``test_verl_real.py``.

1. Both veRL configs, with the Router-R1 wiring ``router-r1 train`` adds, compose with
   veRL's own Hydra config (every key exists, every value type-checks).
2. The reward function loads through veRL's ``get_custom_reward_fn`` with our reward kwargs.
3. ``RouterR1AgentLoop`` is instantiated from the agent-loop file as veRL's worker does
   (``hydra.utils.instantiate``), runs one episode against a fake server manager returning
   veRL's ``TokenOutput``, and its output goes through the worker's real post-processing
   into a ``DataProto``. Upstreams are deterministic fakes (no network).
Prints ``VERL-CHECK {json}`` on success.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import verl
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from transformers import AutoTokenizer
from verl.experimental.agent_loop.agent_loop import (
    AgentLoopOutput,
    AgentLoopWorker,
    DictConfigWrap,
)
from verl.trainer.ppo.reward import get_custom_reward_fn
from verl.workers.rollout.replica import TokenOutput

from router_model.episode.route import RouteCaller
from router_model.protocol.observation import format_observation
from router_model.registry import Registry
from router_model.training.config import TrainConfig
from router_model.training.launch import agent_loop_file, hydra_value, verl_overrides
from tests.fakes.route_caller import FakeRouteCaller

REPO = Path(__file__).resolve().parents[3]
QWEN = "Qwen2.5-7B-Instruct"
REPLY = "Leo Tolstoy wrote War and Peace."
FAKE_UPSTREAMS = "tests.router_model.training.verl_check:fake_upstreams"


@asynccontextmanager
async def fake_upstreams(registry: Registry, total_timeout_s: float) -> AsyncIterator[RouteCaller]:
    """What the agent loop calls its routes through in this check (named by FAKE_UPSTREAMS)."""
    yield FakeRouteCaller({QWEN: REPLY})


TURNS = [
    f"<think>Ask Qwen.</think>\n<search> {QWEN}:who wrote War and Peace </search>",
    "<think>Known now.</think>\n<answer> Leo Tolstoy </answer>",
]


class FakeServerManager:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.calls: list[dict[str, Any]] = []

    async def generate(
        self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **_: Any
    ) -> TokenOutput:
        self.calls.append({"request_id": request_id, "sampling_params": dict(sampling_params)})
        text = TURNS[min(len(self.calls) - 1, len(TURNS) - 1)]
        ids = [*self.tokenizer.encode(text, add_special_tokens=False), self.tokenizer.eos_token_id]
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), stop_reason="completed")


def compose_configs(run_dir: Path) -> dict[str, Any]:
    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    seen: dict[str, Any] = {}
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        for path in sorted((REPO / "configs" / "verl").glob("*.yaml")):
            config = TrainConfig.from_file(path)
            url = config.router.cost_window_url
            assert url  # the configs share the window through Redis ...
            as_written = [
                f"{k}={hydra_value(v)}" for k, v in verl_overrides(config, run_dir).items()
            ]
            kwargs = compose(config_name="ppo_trainer", overrides=as_written).reward
            assert kwargs.custom_reward_function.reward_kwargs.cost_window_url == url
            # ... which this check has not started: score with a per-process window
            router = config.router.model_copy(update={"cost_window_url": None})
            config = config.model_copy(update={"router": router})
            overrides = [
                f"{k}={hydra_value(v)}" for k, v in verl_overrides(config, run_dir).items()
            ]
            cfg = compose(config_name="ppo_trainer", overrides=overrides)
            kwargs = cfg.reward.custom_reward_function.reward_kwargs
            assert (kwargs.metric, kwargs.profile) == ("em", "router-r1"), kwargs
            assert cfg.actor_rollout_ref.rollout.agent.default_agent_loop == "router_r1"
            reward_fn = get_custom_reward_fn(cfg)
            assert reward_fn is not None
            seen[path.name] = {
                "adv_estimator": cfg.algorithm.adv_estimator,
                "n": cfg.actor_rollout_ref.rollout.n,
                "actor_lr": cfg.actor_rollout_ref.actor.optim.lr,
                "kl_in_reward": cfg.algorithm.use_kl_in_reward,
                "steps": cfg.trainer.total_training_steps,
                "reward_fn": reward_fn,
            }
    return seen


async def run_agent_loop(model_dir: str, run_dir: Path, reward_fn: Any) -> dict[str, Any]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = TrainConfig.from_file(REPO / "configs" / "verl" / "router_r1_ppo_qwen2.5-3b.yaml")
    # the agent loop builds its upstreams from the factory the file names: fakes here
    entry = yaml.safe_load(agent_loop_file(config, FAKE_UPSTREAMS))[0]

    rollout_cfg = {"prompt_length": 2048, "response_length": 512}
    trainer_config = OmegaConf.create({"actor_rollout_ref": {"rollout": rollout_cfg}, "data": {}})
    server = FakeServerManager(tokenizer)
    agent_loop = hydra.utils.instantiate(
        config=OmegaConf.create(entry),
        trainer_config=DictConfigWrap(config=trainer_config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        hf_model_type=None,
        dataset_cls=None,
        data_config=DictConfigWrap(OmegaConf.create({})),
    )
    row = {
        "data_source": "nq",
        "question": "who wrote war and peace",
        "raw_prompt": [{"role": "user", "content": "unused: the loop renders the prompt"}],
        "reward_model": {"style": "rule", "ground_truth": {"target": ["Leo Tolstoy"]}},
        "extra_info": {"split": "train", "index": 0},
        "index": 0,
    }
    sampling = {
        "temperature": 1.0,
        "top_p": 0.95,
        "top_k": -1,
        "repetition_penalty": 1.0,
        "logprobs": True,
    }
    output = await agent_loop.run(dict(sampling), **row)
    assert isinstance(output, AgentLoopOutput), type(output)
    assert len(server.calls) == 2
    assert {c["request_id"] for c in server.calls} == {server.calls[0]["request_id"]}
    params = server.calls[0]["sampling_params"]
    assert params["stop"] == ["</search>", "</answer>"]
    assert params["include_stop_str_in_output"] is True
    masked = [i for i, m in zip(output.response_ids, output.response_mask, strict=True) if m == 0]
    assert tokenizer.decode(masked) == format_observation(REPLY), tokenizer.decode(masked)
    assert tokenizer.eos_token_id not in output.response_ids
    assert output.response_logprobs is not None
    assert output.extra_fields["route_raw_cost"] > 0
    output.as_dict()

    # veRL's own per-sample post-processing and batching
    worker = AgentLoopWorker.__new__(AgentLoopWorker)
    worker.rollout_config = OmegaConf.create(rollout_cfg)
    worker.tokenizer = tokenizer
    worker.processor = None
    worker.reward_loop_worker_handles = None
    worker.distillation_enabled = False
    worker.mm_processor_kwargs = {}
    internal = await worker._agent_loop_postprocess(output, False, **row)
    batch = worker._postprocess(
        [internal], input_non_tensor_batch={k: np.array([v], dtype=object) for k, v in row.items()}
    )
    response_mask = batch.batch["response_mask"][0].tolist()
    assert response_mask[: len(output.response_mask)] == output.response_mask
    assert sum(response_mask) == sum(output.response_mask)
    raw_cost = float(batch.non_tensor_batch["route_raw_cost"][0])

    # the reward function as veRL's naive reward manager calls it
    valid = int(batch.batch["attention_mask"][0, 2048:].sum())
    text = tokenizer.decode(batch.batch["responses"][0, :valid].tolist(), skip_special_tokens=True)
    extra_info = (
        {**row["extra_info"], **batch.non_tensor_batch["tool_extra_fields"][0]}
        if "tool_extra_fields" in batch.non_tensor_batch
        else {**row["extra_info"], "route_raw_cost": raw_cost}
    )
    scored = reward_fn(
        data_source="nq",
        solution_str=text,
        ground_truth=row["reward_model"]["ground_truth"],
        extra_info=extra_info,
    )
    return {
        "response_tokens": len(output.response_ids),
        "information_tokens": len(masked),
        "raw_cost": raw_cost,
        "reward": scored,
    }


def main(argv: list[str]) -> int:
    model_dir = argv[0]
    with tempfile.TemporaryDirectory() as tmp:
        configs = compose_configs(Path(tmp))
        reward_fn = configs["router_r1_ppo_qwen2.5-3b.yaml"]["reward_fn"]
        episode = asyncio.run(run_agent_loop(model_dir, Path(tmp), reward_fn))
    summary = {
        name: {k: v for k, v in c.items() if k != "reward_fn"} for name, c in configs.items()
    }
    print("VERL-CHECK " + json.dumps({"configs": summary, "episode": episode}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
