"""Final-answer extraction."""

from __future__ import annotations

import re
from collections.abc import Sequence

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def extract_answer(text: str) -> str | None:
    """The last ``<answer>…</answer>`` of ``text``, stripped (reference reward behaviour).

    On a whole response this also sees answers inside information blocks.
    """
    matches = _ANSWER_RE.findall(text)
    if not matches:
        return None
    last: str = matches[-1]
    return last.strip()


def extract_policy_answer(turns: Sequence[str]) -> str | None:
    """The last answer found in text the policy wrote, each turn searched on its own.

    Pass only policy turns, never observations: an upstream reply cannot answer.
    """
    found: str | None = None
    for turn in turns:
        answer = extract_answer(turn)
        if answer is not None:
            found = answer
    return found
