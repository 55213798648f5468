"""TRL smoke training, run in the TRL venv by ``test_trl_smoke.py`` (prints a JSON report).

A few GRPO steps of the real SmolLM2-135M-Instruct (converted from the packaged GGUF) with
Router-R1 rollouts against deterministic fake upstreams. The first turn of every trajectory
is a scripted route (so every batch has inserted information to mask); later turns are
sampled from the model being trained. A tiny checksum reward is added to the Router-R1 reward
so the two generations of a prompt differ in reward (a tiny model almost never earns the
Router-R1 reward, and equal rewards give GRPO no gradient).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import torch

from router_model.episode.engine import GenerationParams
from router_model.episode.route import RouteCaller
from router_model.registry import Registry
from router_model.training.engine import SampledTokens, TokenGenerator
from router_model.training.trl.sampler import TransformersSampler
from router_model.training.trl.trainer import build_grpo_trainer
from tests.fakes.registry import default_registry, router_profile
from tests.fakes.route_caller import FakeRouteCaller

FORCED_ROUTE = (
    "<think>I will ask a bigger model.</think>\n<search> Qwen2.5-7B-Instruct:{q} </search>"
)
POOL = ("Qwen2.5-7B-Instruct", "LLaMA-3.1-8B-Instruct")
ROWS = [
    {"question": "who wrote war and peace", "golden_answers": ["Leo Tolstoy"]},
    {"question": "what is the capital of france", "golden_answers": ["Paris"]},
    {"question": "how many legs does a spider have", "golden_answers": ["eight", "8"]},
    {"question": "what colour is the sky on a clear day", "golden_answers": ["blue"]},
]


class ForcedFirstTurn:
    """The first turn of each trajectory is a scripted route; the rest is sampled."""

    def __init__(self, inner: TokenGenerator, tokenizer: Any) -> None:
        self._inner = inner
        self._tokenizer = tokenizer

    async def generate_ids(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> SampledTokens:
        tail = self._tokenizer.decode(list(prompt_ids[-8:]))
        if tail.endswith("assistant\n"):  # right after the chat template: the first turn
            text = FORCED_ROUTE.format(q="the answer to this question")
            ids = self._tokenizer.encode(text, add_special_tokens=False)
            return SampledTokens(ids=ids, logprobs=None, finish_reason="stop")
        return await self._inner.generate_ids(prompt_ids, params)


def small_pool_registry() -> Registry:
    """The default registry with a two-model pool: a shorter policy prompt, a faster smoke."""
    registry = default_registry()
    profile = registry.profiles[0].model_copy(update={"pool": POOL})
    return Registry(registry.spec.model_copy(update={"profiles": (profile,)}), registry.source)


def distinct(completion_ids: Sequence[Sequence[int]], **_: Any) -> list[float]:
    """A tiny reward that differs between any two different samples (a token checksum)."""
    return [
        0.01 * (sum(i * (k + 1) for k, i in enumerate(ids)) % 101) / 101 for ids in completion_ids
    ]


@asynccontextmanager
async def fake_upstreams() -> AsyncIterator[RouteCaller]:
    yield FakeRouteCaller(dict.fromkeys(POOL, "It is Paris, probably."))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    registry = small_pool_registry()
    profile = router_profile(registry, max_routes=1, max_turn_tokens=16)
    captured: list[dict[str, Any]] = []

    holder: dict[str, Any] = {}

    def sampler(trainer: Any) -> ForcedFirstTurn:
        model = trainer.accelerator.unwrap_model(trainer.model)
        tok = holder["tokenizer"]
        return ForcedFirstTurn(TransformersSampler(model, tok, temperature=1.0, top_p=0.95), tok)

    from transformers import AutoTokenizer

    holder["tokenizer"] = AutoTokenizer.from_pretrained(args.model)
    trainer, rollout = build_grpo_trainer(
        model_dir=args.model,
        rows=ROWS,
        registry=registry,
        profile=profile,
        route_callers=fake_upstreams,
        output_dir=args.out,
        grpo={"max_steps": args.steps, "learning_rate": 1e-4},
        extra_reward_funcs=[distinct],
        sampler=sampler,
    )
    original = trainer._generate_and_score_completions

    def capture(inputs: Any) -> Any:
        output = original(inputs)
        captured.append({"output": output, "trajectories": list(rollout.last_trajectories)})
        return output

    trainer._generate_and_score_completions = capture
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    started = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - started

    info_tokens = policy_tokens = mask_errors = 0
    for batch in captured:
        out = batch["output"]
        loss_mask = out["completion_mask"] * out["tool_mask"]
        for row, traj in enumerate(batch["trajectories"]):
            ids = out["completion_ids"][row].tolist()[: len(traj.response_ids)]
            if ids != traj.response_ids:
                mask_errors += 1
            for pos, env in enumerate(traj.response_mask):
                in_loss = int(loss_mask[row, pos].item())
                info_tokens += env == 0
                policy_tokens += env == 1
                mask_errors += int(in_loss != env)
    changed = sum(
        not torch.equal(before[n], p.detach()) for n, p in trainer.model.named_parameters()
    )
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    report = {
        "steps": trainer.state.global_step,
        "train_s": round(train_s, 2),
        "batches": len(captured),
        "info_tokens": info_tokens,
        "policy_tokens": policy_tokens,
        "mask_errors": mask_errors,
        "params_changed": changed,
        "params_total": len(before),
        "losses_finite": all(math.isfinite(x) for x in losses),
        "routes": [t.routes for b in captured for t in b["trajectories"]],
    }
    print("SMOKE-REPORT " + json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
