"""Outcome metrics: SQuAD normalisation, exact match, token F1."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from router_model.protocol.answer import extract_answer

__all__ = ["exact_match", "extract_answer", "f1_score", "normalize_answer", "token_f1"]

_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)
_SPECIAL = ("yes", "no", "noanswer")


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation, drop articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES_RE.sub(" ", text).split())


def exact_match(prediction: str, golds: Sequence[str]) -> int:
    """1 when the normalised prediction equals any normalised gold, else 0."""
    normalized = normalize_answer(prediction)
    return int(any(normalize_answer(gold) == normalized for gold in golds))


def token_f1(prediction: str, gold: str) -> float:
    """Token F1 of one pair; yes/no/noanswer must match exactly or score 0."""
    pred = normalize_answer(prediction)
    ref = normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0
    pred_tokens = pred.split()
    ref_tokens = ref.split()
    same = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """Best token F1 over the golds (0.0 without golds)."""
    return max((token_f1(prediction, gold) for gold in golds), default=0.0)
