"""Turning a :class:`~router_model.training.config.TrainConfig` into a training command.

veRL: ``python -m verl.trainer.main_ppo`` with the config's Hydra overrides plus the Router-R1
wiring (agent-loop file, reward function and its arguments). TRL: ``python -m
router_model.training.trl.run`` in the TRL environment. Both run with the repository on
``PYTHONPATH`` so Ray workers import ``router_model`` and the upstream factory the entry
point names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from router_model.training.config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_LOOP_TARGET = "router_model.training.verl.agent_loop.RouterR1AgentLoop"
AGENT_NAME = "router_r1"
REWARD_MODULE = "pkg://router_model.training.verl.reward"


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    files: dict[Path, str]

    def shell(self) -> str:
        return " ".join(_quote(a) for a in self.argv)


def _quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_./=:+,[]@" for c in arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def hydra_value(value: Any) -> str:
    """A Python value as a Hydra override value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if (
        text == ""
        or any(c in text for c in " ,:[]{}'\"=")
        or text.lower() in ("null", "true", "false")
    ):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def verl_overrides(config: TrainConfig, run_dir: Path) -> dict[str, Any]:
    """The config's overrides plus the Router-R1 wiring (ours win)."""
    router = config.router
    registry = str(Path(router.registry).resolve())
    wiring: dict[str, Any] = {
        "actor_rollout_ref.rollout.agent.agent_loop_config_path": str(run_dir / "agent_loops.yaml"),
        "actor_rollout_ref.rollout.agent.default_agent_loop": AGENT_NAME,
        "reward.custom_reward_function.path": REWARD_MODULE,
        "reward.custom_reward_function.name": "compute_score",
        "+reward.custom_reward_function.reward_kwargs": {
            "metric": router.metric,
            "cost_coefficient": router.cost_coefficient,
            "cost_window_url": router.cost_window_url,
            "registry": registry,
            "profile": router.profile,
        },
    }
    return {**config.overrides, **wiring}


def agent_loop_file(config: TrainConfig, upstreams: str) -> str:
    router = config.router
    entry = {
        "name": AGENT_NAME,
        "_target_": AGENT_LOOP_TARGET,
        "registry": str(Path(router.registry).resolve()),
        "profile": router.profile,
        "upstreams": upstreams,
        "upstream_total_timeout_s": router.upstream_total_timeout_s,
    }
    return yaml.safe_dump([entry], sort_keys=False)


def verl_launch(config: TrainConfig, run_dir: Path, python: str, upstreams: str) -> Launch:
    if config.router.limits:
        raise ValueError("router.limits is for TRL smoke runs; set the registry profile's limits")
    overrides = verl_overrides(config, run_dir)
    argv = [
        python,
        "-m",
        "verl.trainer.main_ppo",
        *(f"{k}={hydra_value(v)}" for k, v in overrides.items()),
    ]
    return Launch(argv, _env(), {run_dir / "agent_loops.yaml": agent_loop_file(config, upstreams)})


def trl_launch(config: TrainConfig, run_dir: Path, python: str, upstreams: str) -> Launch:
    path = run_dir / "train_config.json"
    argv = [python, "-m", "router_model.training.trl.run", str(path), "--output-dir", str(run_dir)]
    argv += ["--upstreams", upstreams]
    env = _env({"TRL_EXPERIMENTAL_SILENCE": "1"})
    return Launch(argv, env, {path: json.dumps(config.model_dump(mode="json"), indent=2) + "\n"})


def default_python(backend: str) -> str:
    """veRL: this interpreter. TRL: the TRL venv (scripts/setup_trl.sh) when it exists."""
    if backend == "trl":
        venv = os.environ.get("ROUTER_R1_TRL_VENV") or str(
            Path.home() / ".cache/router-r1/trl-venv"
        )
        candidate = Path(venv) / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    import sys

    return sys.executable


def build_launch(
    config: TrainConfig, run_dir: Path, python: str | None = None, *, upstreams: str
) -> Launch:
    """``upstreams``: the ``module:factory`` the run builds its RouteCaller with (see
    :mod:`router_model.training.upstreams`)."""
    interpreter = python or default_python(config.backend)
    if config.backend == "verl":
        return verl_launch(config, run_dir, interpreter, upstreams)
    return trl_launch(config, run_dir, interpreter, upstreams)
