"""The veRL integration against veRL 0.9.1's real classes and Hydra configs (veRL venv)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack.checkpoints import converted_smollm2_dir, require_converted

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("verl_check.py")


def verl_venv() -> Path:
    return Path(os.environ.get("ROUTER_R1_VERL_VENV") or Path.home() / ".cache/router-r1/verl-venv")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_agent_loop_reward_and_configs_with_real_verl() -> None:
    venv = verl_venv()
    python = venv / "bin" / "python"
    if not any(venv.glob(".installed-*")):  # the stamp scripts/setup_verl.sh leaves when done
        pytest.skip(
            f"veRL is not installed here ({venv}): run scripts/setup_verl.sh; "
            "the veRL logic is still covered by test_verl_episode.py with fakes"
        )
    model = require_converted(converted_smollm2_dir())  # a real tokenizer for veRL's builder
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [str(python), str(SCRIPT), str(model)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("VERL-CHECK ")]
    assert proc.returncode == 0, f"veRL check failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert lines, f"no report line:\n{proc.stdout[-3000:]}"
    report = json.loads(lines[-1].removeprefix("VERL-CHECK "))
    print(f"veRL check: {report}", file=sys.stderr)
    ppo = report["configs"]["router_r1_ppo_qwen2.5-3b.yaml"]
    assert (ppo["adv_estimator"], ppo["n"], ppo["kl_in_reward"], ppo["steps"]) == (
        "gae",
        1,
        True,
        225,
    )
    assert ppo["actor_lr"] == 1e-6
    grpo = report["configs"]["router_r1_grpo_qwen2.5-3b.yaml"]
    assert (grpo["adv_estimator"], grpo["n"]) == ("grpo", 5)
    episode = report["episode"]
    assert episode["information_tokens"] > 0
    assert episode["reward"]["score"] == 1.0
    assert episode["raw_cost"] > 0
