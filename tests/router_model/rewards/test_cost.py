import math

import pytest

from router_model.rewards.cost import CostNormalizer, percentile_linear, raw_cost


def test_raw_cost() -> None:
    assert raw_cost([(100, 0.3), (50, 1.2)]) == pytest.approx(90.0)
    assert raw_cost([]) == 0.0


@pytest.mark.parametrize(
    ("values", "quantile", "expected"),
    [
        ([3.0], 0.5, 3.0),
        ([1.0, 2.0], 0.05, 1.05),
        ([1.0, 2.0], 0.95, 1.95),
        ([4.0, 1.0, 3.0, 2.0], 0.5, 2.5),
        ([0.0, 10.0, 20.0], 1.0, 20.0),
        ([0.0, 10.0, 20.0], 0.0, 0.0),
    ],
)
def test_percentile_linear(values: list[float], quantile: float, expected: float) -> None:
    assert percentile_linear(values, quantile) == pytest.approx(expected)


def test_first_value_and_flat_window_score_half() -> None:
    normalizer = CostNormalizer()
    assert normalizer.score(25.0) == 0.5
    assert normalizer.score(25.0) == 0.5


def test_scores_are_clipped_and_cheap_is_one() -> None:
    normalizer = CostNormalizer()
    normalizer.score(0.0)
    assert normalizer.score(100.0) == 0.0
    assert normalizer.score(0.0) == 1.0
    middle = normalizer.score(25.0)
    values = [0.0, 10.0, 0.0, 5.0]
    low, high = percentile_linear(values, 0.05), percentile_linear(values, 0.95)
    assert middle == pytest.approx(1 - (5.0 - low) / (high - low))


def test_window_evicts_old_values() -> None:
    normalizer = CostNormalizer(window=2)
    normalizer.score(10_000.0)
    normalizer.score(1.0)
    assert len(normalizer) == 2
    normalizer.score(1.0)
    assert len(normalizer) == 2
    # 10_000 has left the window: the last two values are equal
    assert normalizer.score(1.0) == 0.5


def test_instances_do_not_share_state() -> None:
    a, b = CostNormalizer(), CostNormalizer()
    a.score(0.0)
    a.score(100.0)
    assert b.score(100.0) == 0.5


@pytest.mark.parametrize("bad", [-1.0, math.nan])
def test_rejects_bad_cost(bad: float) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        CostNormalizer().score(bad)


def test_rejects_bad_window() -> None:
    with pytest.raises(ValueError, match="window"):
        CostNormalizer(window=0)
