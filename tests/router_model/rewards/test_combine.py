import pytest

from router_model.rewards.combine import Metric, combined_reward


@pytest.mark.parametrize("metric", ["em", "f1"])
def test_bad_format_is_minus_one(metric: Metric) -> None:
    assert combined_reward(-1.0, 1.0, 1.0, 0.0, metric) == -1.0


def test_em() -> None:
    assert combined_reward(0.0, 0.0, 0.9, 0.6, "em") == 0.0
    assert combined_reward(0.0, 1.0, 0.7215, 0.0, "em") == 1.0
    assert combined_reward(0.0, 1.0, 0.7215, 0.6, "em") == pytest.approx(0.8329)
    assert combined_reward(0.0, 1.0, 0.7215, 0.9, "em") == pytest.approx(0.74935)


def test_f1() -> None:
    assert combined_reward(0.0, 0.0, 0.9, 0.6, "f1") == 0.0
    assert combined_reward(0.0, 2 / 3, 0.9703, 0.6, "f1") == pytest.approx(0.84884666)
    assert combined_reward(0.0, 2 / 3, 0.9703, 0.0, "f1") == pytest.approx(2 / 3)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="alpha"):
        combined_reward(0.0, 1.0, 1.0, 1.5, "em")
    with pytest.raises(ValueError, match="metric"):
        combined_reward(0.0, 1.0, 1.0, 0.5, "acc")  # type: ignore[arg-type]
