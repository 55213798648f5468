import pytest

from router_model.rewards.outcome import (
    exact_match,
    extract_answer,
    f1_score,
    normalize_answer,
    token_f1,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Nile!", "nile"),
        ("An apple, a day", "apple day"),
        ("Ünïcode Café", "ünïcode café"),
        ("theatre", "theatre"),
        ("  ", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match() -> None:
    assert exact_match("The Nile!", ["nile"]) == 1
    assert exact_match("Nile River", ["Nile", "the nile river"]) == 1
    assert exact_match("Nile River", ["Nile"]) == 0
    assert exact_match("x", []) == 0


def test_f1() -> None:
    assert f1_score("Paris, France", ["Paris"]) == pytest.approx(2 / 3)
    assert f1_score("Paris", ["London", "paris"]) == 1.0
    assert f1_score("", ["x"]) == 0.0
    assert f1_score("x", []) == 0.0


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("yes", "yes it is", 0.0),
        ("yes it is", "yes", 0.0),
        ("no", "no", 1.0),
        ("noanswer", "no answer", 0.0),
        ("it is yes", "yes it is", 1.0),
    ],
)
def test_yes_no_rule(prediction: str, gold: str, expected: float) -> None:
    assert token_f1(prediction, gold) == expected


def test_extract_answer_is_reexported() -> None:
    assert extract_answer("<answer>a</answer><answer> b </answer>") == "b"
