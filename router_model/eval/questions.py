"""Evaluation questions: the reference parquet sets, or plain JSON / JSON-lines QA files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SMOKE_FILE = Path(__file__).with_name("data") / "smoke20.json"
"""20 questions the project ships (for the end-to-end eval test and a quick look)."""


@dataclass(frozen=True)
class EvalItem:
    dataset: str
    id: str
    question: str
    golds: tuple[str, ...]


def _golds(row: dict[str, Any]) -> list[str]:
    golds = row.get("golden_answers")
    if golds is None:
        target = (row.get("reward_model") or {}).get("ground_truth", {}).get("target")
        golds = target
    if isinstance(golds, str):
        return [golds]
    return [str(g) for g in golds or []]


def _question(row: dict[str, Any]) -> str:
    question = row.get("question") or (row.get("extra_info") or {}).get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("row has no question (expected a 'question' column)")
    return question


def load_questions(path: str | Path, *, dataset: str | None = None) -> list[EvalItem]:
    """Rows with ``question`` and ``golden_answers`` (or the reference ``reward_model``).

    The dataset name is ``dataset``, else the rows' ``data_source``, else the file stem
    without a ``test_`` prefix and ``_qwen``/``_llama`` suffix.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        from router_model.data.prepare import read_parquet

        rows = read_parquet(path)
    elif path.suffix == ".jsonl":
        rows = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    else:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        rows = loaded["questions"] if isinstance(loaded, dict) else loaded
    stem = path.stem.removeprefix("test_").removesuffix("_qwen").removesuffix("_llama")
    items: list[EvalItem] = []
    for index, row in enumerate(rows):
        where = f"{path}[{index}]"
        try:
            golds = _golds(row)
            question = _question(row)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not golds:
            raise ValueError(f"{where}: no golden answers")
        name = dataset or str(row.get("data_source") or stem)
        items.append(EvalItem(name, str(row.get("id", index)), question, tuple(golds)))
    return items
