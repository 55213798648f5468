"""The training reward, the shared cost window and veRL's ``compute_score``."""

from __future__ import annotations

import random

import pytest

from router_model.rewards import CostNormalizer
from router_model.training.cost_window import LocalCostWindow, RedisCostWindow, cost_window
from router_model.training.reward import RouterR1Reward, valid_model_for
from router_model.training.verl.reward import compute_score, golds_of
from tests.fakes.registry import REGISTRY_FILE, default_registry

GOOD = (
    "<think>ask</think>\n<search> Qwen2.5-7B-Instruct:who wrote it </search>"
    "\n\n<information>Leo Tolstoy</information>\n\n"
    "<think>done</think>\n<answer> Leo Tolstoy </answer>"
)
WRONG = GOOD.replace("<answer> Leo Tolstoy </answer>", "<answer> Dostoevsky </answer>")
BAD_FORMAT = "Leo Tolstoy"
GOLDS = ["Leo Tolstoy", "Tolstoy"]


def test_reward_parts() -> None:
    reward = RouterR1Reward(valid_model_for(default_registry(), "router-r1"))
    good = reward.score(GOOD, GOLDS, raw_cost=3.0)
    assert (good.score, good.format, good.em, good.f1, good.routes) == (1.0, 0.0, 1, 1.0, 1)
    assert good.answer == "Leo Tolstoy"
    assert reward.score(WRONG, GOLDS, 3.0).score == 0.0
    bad = reward.score(BAD_FORMAT, GOLDS, 0.0)
    assert (bad.score, bad.format, bad.em) == (-1.0, -1.0, 0)


def test_reward_with_cost_coefficient_uses_the_window() -> None:
    reward = RouterR1Reward(valid_model_for(None, None), alpha=0.9, window=LocalCostWindow())
    reward.score(GOOD, GOLDS, 100.0)  # an expensive trajectory fills the window first
    cheap = reward.score(GOOD, GOLDS, 0.0)
    assert cheap.cost == 1.0
    assert cheap.score == pytest.approx(0.1 * 1.0 + 0.9 * 1.0)
    dear = reward.score(GOOD, GOLDS, 100.0)
    assert dear.cost == pytest.approx(0.0)
    assert dear.score == pytest.approx(0.1)


def test_f1_metric() -> None:
    reward = RouterR1Reward(valid_model_for(None, None), metric="f1")
    partial = reward.score(
        GOOD.replace("Leo Tolstoy </answer>", "Count Leo Tolstoy </answer>"), GOLDS, 0
    )
    assert 0 < partial.score < 1
    with pytest.raises(ValueError, match="metric"):
        RouterR1Reward(valid_model_for(None, None), metric="acc")  # type: ignore[arg-type]


@pytest.mark.slow
def test_redis_window_matches_the_reference_window(redis_url: str) -> None:
    rng = random.Random(7)
    raws = [rng.choice([0.0, 0.5, 3.0, 40.0, 150.0, rng.uniform(0, 300)]) for _ in range(60)]
    reference = CostNormalizer(window=25)
    shared = RedisCostWindow(redis_url, key="t:match", window=25)
    try:
        got = [shared.score(r) for r in raws]
    finally:
        shared.reset()
        shared.close()
    assert got == pytest.approx([reference.score(r) for r in raws], abs=1e-12)


@pytest.mark.slow
def test_redis_window_is_shared_between_workers(redis_url: str) -> None:
    worker_a = RedisCostWindow(redis_url, key="t:shared")
    worker_b = RedisCostWindow(redis_url, key="t:shared")
    local_b = LocalCostWindow()
    try:
        for raw in (0.0, 10.0, 20.0, 30.0):
            worker_a.score(raw)  # history only worker A has seen
        # B scores against A's history: 30 is the dearest so far; a local window has no history
        assert worker_b.score(30.0) == pytest.approx(0.0)
        assert local_b.score(30.0) == 0.5  # one value: flat window
        assert worker_b.score(0.0) == 1.0
    finally:
        worker_a.reset()
        worker_a.close()
        worker_b.close()
    with pytest.raises(ValueError, match="non-negative"):
        LocalCostWindow().score(-1.0)


def test_cost_window_factory() -> None:
    assert isinstance(cost_window(None), LocalCostWindow)
    assert isinstance(cost_window(""), LocalCostWindow)


def test_golds_of_shapes() -> None:
    assert golds_of({"target": ["a", "b"]}) == ["a", "b"]
    assert golds_of({"target": ("a",)}) == ["a"]
    assert golds_of(["x"]) == ["x"]
    assert golds_of({"target": "solo"}) == ["solo"]
    with pytest.raises(ValueError, match="no target"):
        golds_of({"target": None})


def test_compute_score_reads_route_cost_from_extra_info() -> None:
    kwargs = {
        "metric": "em",
        "cost_coefficient": 0.0,
        "registry": str(REGISTRY_FILE),
        "profile": "router-r1",
    }
    result = compute_score(
        "nq", GOOD, {"target": GOLDS}, {"route_raw_cost": 2.4, "split": "train"}, **kwargs
    )
    assert result["score"] == 1.0
    assert (result["acc"], result["em"], result["format"], result["routes"]) == (1.0, 1.0, 0.0, 1.0)
    assert result["raw_cost"] == 2.4
    bad = compute_score("nq", BAD_FORMAT, {"target": GOLDS}, None)
    assert (bad["score"], bad["raw_cost"]) == (-1.0, 0.0)
