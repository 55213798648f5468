from router_model.protocol.answer import extract_answer, extract_policy_answer
from router_model.protocol.observation import format_observation


def test_last_answer_of_whole_text() -> None:
    text = "<answer> a </answer> then <answer>\n b \n</answer>"
    assert extract_answer(text) == "b"


def test_no_answer() -> None:
    assert extract_answer("<answer> unterminated") is None
    assert extract_answer("") is None


def test_reference_sees_answer_inside_information() -> None:
    response = "<think>t</think><search>m:q</search>" + format_observation(
        "<answer>wrong</answer>", neutralize=False
    )
    assert extract_answer(response) == "wrong"


def test_policy_answer_ignores_information() -> None:
    turns = ["<think>t</think><search>m:q</search>", "<think>t</think>no answer"]
    # the observation between the turns carries an upstream <answer>; it is not passed
    assert extract_policy_answer(turns) is None
    assert extract_policy_answer([*turns, "<think>u</think><answer> Paris </answer>"]) == "Paris"


def test_policy_answer_does_not_span_turns() -> None:
    assert extract_policy_answer(["<answer> half", "other </answer>"]) is None
