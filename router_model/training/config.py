"""Training run configuration (``router-r1 train CONFIG.yaml``), shared by both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from router_model.registry import Registry, RouterProfile


class RouterSettings(BaseModel):
    """What the rollouts and the reward need to know about Router-R1."""

    model_config = ConfigDict(extra="forbid")

    registry: Path = Path("model_registry.yaml")
    profile: str = "router-r1"
    metric: Literal["em", "f1"] = "em"
    cost_coefficient: float = Field(default=0.0, ge=0.0, le=1.0)
    cost_window_url: str | None = Field(
        default=None, description="redis://... shares the cost window across reward workers."
    )
    limits: dict[str, float] = Field(
        default_factory=dict, description="Profile limit overrides (e.g. a short smoke run)."
    )
    upstream_total_timeout_s: float = Field(default=60.0, gt=0)

    def load(self) -> tuple[Registry, RouterProfile]:
        """The registry and the profile, with ``limits`` applied (same profile name)."""
        registry = Registry.from_file(self.registry)
        profile = registry.profile(self.profile)
        if profile is None:
            raise ValueError(f"{self.registry}: no profile {self.profile!r}")
        if self.limits:
            limits = profile.limits.model_validate({**profile.limits.model_dump(), **self.limits})
            profile = profile.model_copy(update={"limits": limits})
        return registry, profile


class TrainConfig(BaseModel):
    """A training run: the backend, Router-R1 settings and the backend's own settings."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["verl", "trl"]
    description: str = ""
    router: RouterSettings = RouterSettings()
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="veRL: Hydra overrides for verl.trainer.main_ppo."
    )
    model: str | None = Field(default=None, description="TRL: the policy checkpoint directory.")
    train_file: Path | None = Field(default=None, description="TRL: parquet or JSON lines.")
    max_train_rows: int | None = Field(default=None, gt=0)
    grpo: dict[str, Any] = Field(default_factory=dict, description="TRL: GRPOConfig fields.")

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        return cls.model_validate(data)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` with a YAML value (``a.b=3``, ``x=null``, ``y=[1,2]``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value) if value else ""


def apply_assignments(config: TrainConfig, assignments: list[str]) -> TrainConfig:
    """``--set`` values: ``router.X``, ``grpo.X``, ``overrides.X`` (dotted Hydra keys after
    ``overrides.``) or a top-level field."""
    data = config.model_dump(mode="json")
    for text in assignments:
        key, value = parse_assignment(text)
        section, _, rest = key.partition(".")
        if section == "overrides" and rest:
            data["overrides"][rest] = value
        elif section in ("router", "grpo") and rest:
            target = data[section]
            *parents, leaf = rest.split(".")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = value
        else:
            data[key] = value
    return TrainConfig.model_validate(data)
