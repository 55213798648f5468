"""The incremental answer/reasoning splitter, across every chunk boundary."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from router_model.episode import AnswerDelta, AnswerSplitter, ReasoningDelta, split_turn
from router_model.protocol.turn import ActionKind, parse_action

CASES = Path(__file__).resolve().parents[2] / "router_model" / "router_r1_cases.jsonl"


def _run(chunks: list[str], stops: tuple[str, ...] = ()) -> tuple[str, str, str]:
    """(reasoning, answer as streamed, answer_text) for the chunks fed in order."""
    splitter = AnswerSplitter(stops)
    deltas = []
    for chunk in chunks:
        deltas += splitter.feed(chunk)
    deltas += splitter.finish()
    reasoning = "".join(d.text for d in deltas if isinstance(d, ReasoningDelta))
    answer = "".join(d.text for d in deltas if isinstance(d, AnswerDelta))
    assert all(d.text for d in deltas), "no empty deltas"
    return reasoning, answer, splitter.answer_text


def _chunkings(text: str) -> list[list[str]]:
    """Whole, char by char, every split in two, and a few random splits."""
    out = [[text], list(text)]
    out += [[text[:i], text[i:]] for i in range(1, len(text))]
    rng = random.Random(42)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), k=min(5, len(text) - 1)))
        out.append([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)])
    return out


TURN = "<think> Paris is in France. </think>\n<answer>  Paris, France \n</answer>"


@pytest.mark.parametrize("chunks", _chunkings(TURN))
def test_answer_tag_split_anywhere(chunks: list[str]) -> None:
    reasoning, answer, answer_text = _run(chunks)
    assert reasoning == "<think> Paris is in France. </think>\n"
    assert answer == answer_text == "Paris, France"


@pytest.mark.parametrize("chunks", _chunkings("<think>x</think><search>A: b<c</search>"))
def test_search_turn_is_all_reasoning(chunks: list[str]) -> None:
    assert _run(chunks) == ("<think>x</think><search>A: b<c</search>", "", "")


def test_lookalike_tags_are_reasoning() -> None:
    text = "<ans <answe> </answer> <answer"
    for chunks in _chunkings(text):
        assert _run(chunks) == (text, "", "")


def test_only_the_first_answer_block_is_the_answer() -> None:
    text = "<answer>a</answer> then <answer>b</answer>"
    for chunks in _chunkings(text):
        assert _run(chunks) == (" then <answer>b</answer>", "a", "a")


def test_unclosed_answer_is_flushed_at_the_end() -> None:
    for chunks in _chunkings("<answer> 42 </ans"):
        assert _run(chunks) == ("", "42 </ans", "42 </ans")


@pytest.mark.parametrize("chunks", _chunkings("<answer> Paris. Capital of France</answer>"))
def test_client_stop_cuts_the_answer(chunks: list[str]) -> None:
    reasoning, answer, answer_text = _run(chunks, stops=(".",))
    assert (reasoning, answer, answer_text) == ("", "Paris", "Paris")


def test_stop_that_is_a_prefix_of_the_close_tag_loses_to_it() -> None:
    assert _run(["<answer>x</answer> y"], stops=("</",)) == (" y", "x", "x")


def test_stops_do_not_apply_outside_the_answer() -> None:
    assert _run(["<think>a.b</think><answer>c</answer>"], stops=(".",)) == (
        "<think>a.b</think>",
        "c",
        "c",
    )


def _answer_turns() -> list[tuple[str, str]]:
    turns = [
        (case["turn"], case["content"])
        for case in map(json.loads, CASES.read_text().splitlines())
        if case["kind"] == "turn" and case["action"] == "answer"
    ]
    assert turns, "the conformance file has answer turns"
    return turns


@pytest.mark.parametrize(("turn", "content"), _answer_turns())
def test_answer_text_equals_the_reference_content(turn: str, content: str) -> None:
    assert parse_action(turn).kind is ActionKind.ANSWER
    for chunks in _chunkings(turn)[:40]:
        _, answer, answer_text = _run(chunks)
        assert answer == answer_text == content
    assert split_turn(turn)[1] == content
