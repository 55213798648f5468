import pytest

from router_model.protocol.turn import Action, ActionKind, cut_turn, parse_action


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think><search>m:q</search> trailing", "<think>a</think><search>m:q</search>"),
        ("<answer>x</answer> more </answer>", "<answer>x</answer>"),
        # </search> wins even when </answer> comes first
        ("<answer>x</answer><search>m:q</search>tail", "<answer>x</answer><search>m:q</search>"),
        ("<think>no closer", "<think>no closer"),
        ("", ""),
        ("<search>a</search><search>b</search>", "<search>a</search>"),
    ],
)
def test_cut_turn(text: str, expected: str) -> None:
    assert cut_turn(text) == expected


@pytest.mark.parametrize(
    ("turn", "kind", "content"),
    [
        ("<think>t</think>\n<search> Qwen:who? </search>", ActionKind.SEARCH, "Qwen:who?"),
        ("<answer> 1989 </answer><search>a:b</search>", ActionKind.ANSWER, "1989"),
        ("<search>a:b</search><answer>x</answer>", ActionKind.SEARCH, "a:b"),
        ("<answer>x</search>", None, ""),
        ("<answer>x</search><search>m:q</search>", ActionKind.SEARCH, "m:q"),
        ("<search> unterminated<search>m:q</search>", ActionKind.SEARCH, "unterminated<search>m:q"),
        (
            "<search> LLM-Name:Your-Query </search>",
            ActionKind.INVALID_PLACEHOLDER,
            "LLM-Name:Your-Query",
        ),
        ("<search> qwen:YOUR-QUERY </search>", ActionKind.INVALID_PLACEHOLDER, "qwen:YOUR-QUERY"),
        ("<search> qwen what </search>", ActionKind.INVALID_NO_COLON, "qwen what"),
        ("<search> qwen: </search>", ActionKind.INVALID_EMPTY_QUERY, "qwen:"),
        ("<search> qwen:a: </search>", ActionKind.INVALID_EMPTY_QUERY, "qwen:a:"),
        ("<search></search>", ActionKind.INVALID_NO_COLON, ""),
        ("<answer>  </answer>", ActionKind.ANSWER, ""),
        ("<SEARCH>a:b</SEARCH>", None, ""),
        ("no tags at all", None, ""),
    ],
)
def test_parse_action(turn: str, kind: ActionKind | None, content: str) -> None:
    assert parse_action(turn) == Action(kind, content)


def test_kind_values_are_reference_strings() -> None:
    assert [k.value for k in ActionKind] == [
        "search",
        "answer",
        "route invalid-1",
        "route invalid-2",
        "route invalid-3",
    ]


def test_route_fields() -> None:
    action = parse_action("<search>  Gemma-2-27B-Instruct : who: details </search>")
    assert action.is_route
    assert action.model_name == "Gemma-2-27B-Instruct"
    assert action.lookup_name == "gemma-2-27b-instruct"
    assert action.query == " who"
    assert action.query_remainder == " who: details"


def test_route_fields_need_a_valid_search() -> None:
    action = parse_action("<answer>x</answer>")
    assert not action.is_route
    with pytest.raises(ValueError, match="not a valid route"):
        _ = action.query
