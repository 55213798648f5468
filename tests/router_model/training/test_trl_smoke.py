"""A few real GRPO steps of SmolLM2-135M with Router-R1 rollouts, in the TRL venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack.checkpoints import converted_smollm2_dir, require_converted

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("trl_smoke.py")


def trl_python() -> Path:
    venv = os.environ.get("ROUTER_R1_TRL_VENV") or str(Path.home() / ".cache/router-r1/trl-venv")
    return Path(venv) / "bin" / "python"


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_trl_smoke_training_masks_information_and_updates_weights(tmp_path: Path) -> None:
    python = trl_python()
    if not python.exists():
        pytest.fail(f"{python} missing: run scripts/setup_trl.sh (scripts/bootstrap.sh does)")
    model = require_converted(converted_smollm2_dir())
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "TRL_EXPERIMENTAL_SILENCE": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "TOKENIZERS_PARALLELISM": "false",
    }
    proc = subprocess.run(
        [str(python), str(SCRIPT), "--model", str(model), "--out", str(tmp_path / "out")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SMOKE-REPORT ")]
    assert proc.returncode == 0, f"smoke run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert lines, f"no report line:\n{proc.stdout[-3000:]}"
    report = json.loads(lines[-1].removeprefix("SMOKE-REPORT "))
    print(f"TRL smoke: {report}", file=sys.stderr)
    assert report["steps"] == 2
    assert report["info_tokens"] > 0  # every batch had inserted information ...
    assert report["mask_errors"] == 0  # ... and none of it (only it) was out of the loss
    assert report["policy_tokens"] > 0
    assert report["params_changed"] > 0
    assert report["losses_finite"] is True
    assert all(r == 1 for r in report["routes"])
