from router_model.rewards.format import legacy_valid_model
from router_model.rewards.routes import count_routes


def count(response: str) -> int:
    return count_routes(response, legacy_valid_model())


def test_counts_valid_searches() -> None:
    response = (
        "<think>t</think><search>qwen:a</search><information>i</information>"
        "<think>t</think><search>Gemma:b</search><information>i</information><answer>x</answer>"
    )
    assert count(response) == 2


def test_stops_at_first_bad_search() -> None:
    response = "<search>qwen:a</search><search>GPT-4o:b</search><search>gemma:c</search>"
    assert count(response) == 1
    assert count("<search>LLM-Name:Your-Query</search><search>qwen:a</search>") == 0
    assert count("<search>qwen:a:b</search><search>qwen:a</search>") == 0


def test_reference_quirks() -> None:
    # a name repeated in its query still counts; searches inside information too
    assert count("<search>Qwen:what does qwen know</search>") == 1
    assert count("<information><search>qwen:a</search></information>") == 1
    assert count("<answer>x</search>") == 0
    assert count("") == 0
