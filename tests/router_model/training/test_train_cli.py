"""``router-r1 train``: configs, --set, the launch command and the files it writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from router_model.training.config import TrainConfig, apply_assignments, parse_assignment
from router_model.training.launch import build_launch, hydra_value
from router_r1.cli import app
from router_r1.upstreams import UPSTREAMS

REPO = Path(__file__).resolve().parents[3]
PPO = REPO / "configs/verl/router_r1_ppo_qwen2.5-3b.yaml"
GRPO = REPO / "configs/verl/router_r1_grpo_qwen2.5-3b.yaml"
SMOKE = REPO / "configs/trl/smoke_smollm2_cpu.yaml"


def test_reference_run_settings() -> None:
    ppo = TrainConfig.from_file(PPO).overrides
    assert ppo["algorithm.adv_estimator"] == "gae"
    assert (ppo["actor_rollout_ref.actor.optim.lr"], ppo["critic.optim.lr"]) == (1e-6, 1e-5)
    assert (ppo["algorithm.kl_ctrl.type"], ppo["algorithm.kl_ctrl.kl_coef"]) == ("fixed", 0.001)
    assert ppo["algorithm.use_kl_in_reward"] is True
    assert (ppo["data.train_batch_size"], ppo["actor_rollout_ref.rollout.n"]) == (64, 1)
    assert (ppo["trainer.total_training_steps"], ppo["trainer.n_gpus_per_node"]) == (225, 4)
    assert ppo["actor_rollout_ref.model.path"] == "Qwen/Qwen2.5-3B-Instruct"
    grpo = TrainConfig.from_file(GRPO).overrides
    assert grpo["algorithm.adv_estimator"] == "grpo"
    assert not any(k.startswith("critic.") for k in grpo)


def test_verl_dry_run_writes_the_agent_loop_file(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(PPO),
            "--dry-run",
            "--run-dir",
            str(run_dir),
            "--set",
            "router.cost_coefficient=0.9",
            "--set",
            "overrides.trainer.total_training_steps=3",
            "--python",
            "python3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (run_dir / "command.sh").read_text().startswith("python3 -m verl.trainer.main_ppo ")
    config = apply_assignments(
        TrainConfig.from_file(PPO),
        ["router.cost_coefficient=0.9", "overrides.trainer.total_training_steps=3"],
    )
    argv = build_launch(config, run_dir, "python3", upstreams=UPSTREAMS).argv
    assert "trainer.total_training_steps=3" in argv
    assert "actor_rollout_ref.rollout.agent.default_agent_loop=router_r1" in argv
    assert "reward.custom_reward_function.path='pkg://router_model.training.verl.reward'" in argv
    (kwargs,) = [a for a in argv if a.startswith("+reward.custom_reward_function.reward_kwargs=")]
    assert "cost_coefficient:0.9" in kwargs
    assert "cost_window_url:'redis://127.0.0.1:6379/0'" in kwargs
    (entry,) = yaml.safe_load((run_dir / "agent_loops.yaml").read_text())
    assert entry["_target_"] == "router_model.training.verl.agent_loop.RouterR1AgentLoop"
    assert entry["name"] == "router_r1"
    assert Path(entry["registry"]).is_absolute()


def test_trl_launch(tmp_path: Path) -> None:
    launch = build_launch(TrainConfig.from_file(SMOKE), tmp_path, "py", upstreams=UPSTREAMS)
    assert launch.argv[:3] == ["py", "-m", "router_model.training.trl.run"]
    assert str(REPO) in launch.env["PYTHONPATH"]
    (config_file,) = launch.files
    assert '"backend": "trl"' in launch.files[config_file]


def test_bad_configs_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("backend: keras\n")
    result = CliRunner().invoke(app, ["train", str(bad), "--dry-run"])
    assert result.exit_code == 2
    assert "error:" in result.output
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_assignment("novalue")
    limited = apply_assignments(TrainConfig.from_file(PPO), ["router.limits.max_routes=2"])
    with pytest.raises(ValueError, match=r"router\.limits"):
        build_launch(limited, tmp_path, "py", upstreams=UPSTREAMS)


def test_hydra_values() -> None:
    assert hydra_value(None) == "null"
    assert hydra_value(True) == "true"
    assert hydra_value(1e-6) == "1e-06"
    assert hydra_value(["a", "b"]) == "[a,b]"
    assert hydra_value("a b") == "'a b'"
    assert hydra_value({"k": "x:y"}) == "{k:'x:y'}"
