import pytest

from router_model.protocol.names import NameResolver, NameRule, legacy_resolver
from router_model.rewards.format import (
    format_reward,
    legacy_valid_model,
    valid_model_from_resolver,
)

GOOD = (
    "<think>need help</think>\n<search> Qwen2.5-7B-Instruct:who wrote it </search>"
    "\n\n<information>Tolstoy.</information>\n\n<think>ok</think>\n<answer> Tolstoy </answer>"
)


def score(response: str) -> float:
    return format_reward(response, legacy_valid_model())


def test_good_response() -> None:
    assert score(GOOD) == 0.0
    assert score("  \n<think>t</think><answer>a</answer>\n ") == 0.0


@pytest.mark.parametrize(
    "response",
    [
        pytest.param("plain text", id="no-block"),
        pytest.param("<think>t</think><answer>a</answer></think>", id="unbalanced"),
        pytest.param("<think> ... </think><answer>a</answer>", id="ellipsis-think"),
        pytest.param("<think>  </think><answer>a</answer>", id="empty-think"),
        pytest.param("<think>t</think><answer><think>x</think>a</answer>", id="nested"),
        pytest.param(
            "<think>t</think><search>qwen:q</search><information>see <think> tag</information>"
            "<think>u</think><answer>a</answer>",
            id="tag-inside-information",
        ),
        pytest.param("<think>t</think><answer>a</answer><answer>a</answer>", id="two-answers"),
        pytest.param("<answer>a</answer>", id="no-think"),
        pytest.param("<think>t</think><search>qwen:q</search><answer>a</answer>", id="no-info"),
        pytest.param("Sure! <think>t</think><answer>a</answer>", id="prefix"),
        pytest.param("<think>t</think><answer>a</answer> bye", id="suffix"),
        pytest.param(
            "<think>t</think><search>qwen q</search><information>i</information>"
            "<think>u</think><answer>a</answer>",
            id="no-colon",
        ),
        pytest.param(
            "<think>t</think><search>qwen:a:b</search><information>i</information>"
            "<think>u</think><answer>a</answer>",
            id="two-colons",
        ),
        pytest.param(
            "<think>t</think><search>qwen: </search><information>i</information>"
            "<think>u</think><answer>a</answer>",
            id="empty-query",
        ),
        pytest.param(
            "<think>t</think><search>LLM-Name:q</search><information>i</information>"
            "<think>u</think><answer>a</answer>",
            id="placeholder",
        ),
        pytest.param(
            "<think>t</think><search>Qwen:ask qwen about x</search><information>i</information>"
            "<think>u</think><answer>a</answer>",
            id="name-in-query",
        ),
        pytest.param(
            "<think>t</think><search>GPT-4o:q</search><information>i</information>"
            "<think>u</think><answer>a</answer>",
            id="unknown-model",
        ),
    ],
)
def test_penalties(response: str) -> None:
    assert score(response) == -1.0


def test_out_of_pool_names_valid_for_the_reference() -> None:
    response = GOOD.replace("Qwen2.5-7B-Instruct", "granite-8b")
    assert score(response) == 0.0
    only_qwen = valid_model_from_resolver(NameResolver(rules=[NameRule("q", ("qwen",))]))
    assert format_reward(response, only_qwen) == -1.0


def test_valid_model_receives_the_written_name() -> None:
    seen: list[str] = []

    def record(name: str) -> bool:
        seen.append(name)
        return True

    assert format_reward(GOOD, record) == 0.0
    assert seen == ["Qwen2.5-7B-Instruct"]
    assert legacy_resolver().is_known(seen[0])
