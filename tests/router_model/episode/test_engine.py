"""GenerationParams: the action stops are always there, and the fields both engines read."""

from __future__ import annotations

import pytest

from router_model.episode.engine import GenerationParams


def test_completion_fields_without_a_seed_leave_it_to_the_engine() -> None:
    fields = GenerationParams(max_tokens=8, temperature=0.5, stop=("\n\n",)).completion_fields()
    assert fields == {
        "max_tokens": 8,
        "temperature": 0.5,
        "top_p": 1.0,
        "stop": ["</search>", "</answer>", "\n\n"],
        "include_stop_str_in_output": True,
    }


def test_a_seed_is_sent() -> None:
    assert GenerationParams(max_tokens=1, seed=7).completion_fields()["seed"] == 7


def test_max_tokens_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        GenerationParams(max_tokens=0)
