"""PolicyContext: training layout, observation cap, left truncation, response mask."""

from __future__ import annotations

import pytest

from router_model.episode import PolicyContext
from router_model.protocol.observation import format_observation
from tests.fakes.toy_tokenizer import ToyTokenizer


@pytest.fixture
def tok() -> ToyTokenizer:
    return ToyTokenizer()


def test_layout_is_pieces_tokenized_separately(tok: ToyTokenizer) -> None:
    prompt = tok.encode("<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n")
    t1 = "<think>a</think>\n<search>Qwen:who</search>"
    o1 = format_observation("Paris")
    t2 = "<think>b</think>\n<answer>Paris</answer>"
    context = PolicyContext(prompt, max_context_tokens=4096)
    context.append_turn(t1, tok.encode(t1))
    context.append_observation(o1, tok.encode(o1))
    context.append_turn(t2, tok.encode(t2))

    expected = prompt + tok.encode(t1) + tok.encode(o1) + tok.encode(t2)
    assert context.engine_prompt() == expected
    assert context.response_ids == expected[len(prompt) :]
    assert context.response_text == t1 + o1 + t2
    assert context.turn_texts == [t1, t2]
    # separate tokenization differs from re-tokenizing the joined text: ids are kept as built
    assert context.response_ids != tok.encode(t1 + o1 + t2)
    assert [p.kind for p in context.pieces] == ["turn", "observation", "turn"]


def test_response_mask_marks_observations(tok: ToyTokenizer) -> None:
    context = PolicyContext([1, 2, 3], max_context_tokens=100)
    context.append_turn("t", [10, 11])
    context.append_observation("o", [20, 21, 22])
    context.append_turn("u", [30])
    assert context.response_ids == [10, 11, 20, 21, 22, 30]
    assert context.response_mask == [1, 1, 0, 0, 0, 1]
    assert len(context.response_mask) == len(context.response_ids)
    assert context.total_tokens == 9


def test_observation_ids_are_capped(tok: ToyTokenizer) -> None:
    context = PolicyContext([1], max_context_tokens=100, max_observation_tokens=4)
    piece = context.append_observation("cut text", [5, 6, 7, 8, 9, 10])
    assert piece.ids == (5, 6, 7, 8)
    assert piece.truncated
    assert piece.text == "cut text"
    short = context.append_observation("o", [1, 2])
    assert not short.truncated
    assert context.response_ids == [5, 6, 7, 8, 1, 2]


def test_engine_prompt_is_left_truncated(tok: ToyTokenizer) -> None:
    context = PolicyContext([1, 2, 3, 4], max_context_tokens=5)
    assert context.engine_prompt() == [1, 2, 3, 4]
    assert not context.is_truncated
    context.append_turn("t", [10, 11])
    context.append_observation("o", [20])
    assert context.is_truncated
    assert context.engine_prompt() == [3, 4, 10, 11, 20]
    # the response record itself is never truncated
    assert context.response_ids == [10, 11, 20]
    assert context.prompt_ids == [1, 2, 3, 4]


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_context_tokens"):
        PolicyContext([], max_context_tokens=0)
