"""The action grammar's text: names, escaping, bounds (its effect on a real model is tested in
tests/integration/: a real 135M model under it writes only valid actions)."""

from __future__ import annotations

import re

import pytest

from router_model.protocol.grammar import (
    MAX_ANSWER_CHARS,
    MAX_QUERY_CHARS,
    MAX_THOUGHT_CHARS,
    action_grammar,
    gbnf_literal,
)


def _rules(grammar: str) -> dict[str, str]:
    rules = {}
    for line in grammar.strip().splitlines():
        name, _, body = line.partition(" ::= ")
        assert name, line
        assert body, line
        rules[name] = body
    return rules


def test_names_become_literal_alternatives_in_order() -> None:
    rules = _rules(action_grammar(["Qwen2.5-7B-Instruct", "Gemma-3-270M"]))
    assert rules["name"] == '"Qwen2.5-7B-Instruct" | "Gemma-3-270M"'
    assert rules["action"] == "answer | search"
    assert rules["search"] == '"<search> " name ":" " "? query " </search>"'
    assert rules["root"].startswith('"<think>" thought "</think>"')


def test_duplicates_are_dropped() -> None:
    rules = _rules(action_grammar(["A", "B", "A"]))
    assert rules["name"] == '"A" | "B"'


def test_without_names_only_an_answer_is_possible() -> None:
    rules = _rules(action_grammar([]))
    assert rules["action"] == "answer"
    assert "search" not in rules
    assert "name" not in rules


def test_lengths_are_bounded() -> None:
    rules = _rules(action_grammar(["A"]))
    assert rules["thought"] == f"lead text{{0,{MAX_THOUGHT_CHARS - 1}}}"
    assert rules["query"] == f"lead qtext{{0,{MAX_QUERY_CHARS - 1}}}"
    assert f"text{{0,{MAX_ANSWER_CHARS - 1}}}" in rules["answer"]
    small = _rules(action_grammar(["A"], max_thought_chars=5, max_query_chars=3))
    assert small["thought"] == "lead text{0,4}"
    assert small["query"] == "lead qtext{0,2}"
    with pytest.raises(ValueError, match="max_answer_chars"):
        action_grammar(["A"], max_answer_chars=0)


def test_block_text_excludes_tags_and_query_excludes_colons() -> None:
    rules = _rules(action_grammar(["A"]))
    assert rules["text"] == "[^<]"
    assert rules["qtext"] == "[^<:\\n]"
    # the first character is visible and not '.', so a block is never empty or "..."
    assert rules["lead"] == "[^<:.\\x00-\\x20\\x7f]"


@pytest.mark.parametrize(
    ("name", "literal"),
    [
        ("plain", '"plain"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("tab\there", '"tab\\there"'),
        ("bell\x07", '"bell\\x07"'),
        ("Modèle-ü", '"Modèle-ü"'),
    ],
)
def test_literal_escaping(name: str, literal: str) -> None:
    assert gbnf_literal(name) == literal


def test_escaped_names_stay_single_literals() -> None:
    rules = _rules(action_grammar(['We "quote"', "a\\b"]))
    literals = re.findall(r'"(?:[^"\\]|\\.)*"', rules["name"])
    assert literals == ['"We \\"quote\\""', '"a\\\\b"']


@pytest.mark.parametrize("bad", ["", "   ", "a:b", "two\nlines"])
def test_names_that_cannot_be_written_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="cannot appear"):
        action_grammar([bad])
