"""Question-answering sets in FlashRAG's layout: ``{id, question, golden_answers}`` rows.

Two sources: the Hugging Face hub (``RUC-NLPIR/FlashRAG_datasets``, one config per dataset;
needs the ``datasets`` package and internet) and a local directory laid out as FlashRAG
ships it, ``DIR/<dataset>/<split>.jsonl`` (what tests and offline users use).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

HUB_REPO = "RUC-NLPIR/FlashRAG_datasets"
TRAIN_SETS = ("nq", "hotpotqa")
EVAL_SETS = ("nq", "triviaqa", "popqa", "hotpotqa", "2wikimultihopqa", "musique", "bamboogle")
EVAL_SPLIT_PRIORITY = ("test", "dev", "train")
"""The reference evaluation takes a set's test split, else dev, else train."""


class QASource(Protocol):
    def splits(self, dataset: str) -> Sequence[str]:
        """The splits ``dataset`` has."""
        ...

    def load(self, dataset: str, split: str) -> list[dict[str, Any]]:
        """All rows of one split, in the source's order."""
        ...


def check_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    question = row.get("question")
    golds = row.get("golden_answers")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: 'question' must be a non-empty string")
    if isinstance(golds, str) or not isinstance(golds, Sequence) or not golds:
        raise ValueError(f"{where}: 'golden_answers' must be a non-empty list of strings")
    return {**row, "golden_answers": [str(g) for g in golds]}


class LocalSource:
    """``root/<dataset>/<split>.jsonl``, one JSON object a line."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def splits(self, dataset: str) -> Sequence[str]:
        folder = self.root / dataset
        return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []

    def load(self, dataset: str, split: str) -> list[dict[str, Any]]:
        path = self.root / dataset / f"{split}.jsonl"
        rows: list[dict[str, Any]] = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    rows.append(check_row(json.loads(line), f"{path}:{number}"))
        return rows


class HubSource:
    """FlashRAG's datasets on the Hugging Face hub (downloads; not for tests or CI)."""

    def __init__(self, repo: str = HUB_REPO) -> None:
        self.repo = repo
        self._cache: dict[str, Any] = {}

    def _dataset(self, dataset: str) -> Any:
        if dataset not in self._cache:
            import datasets

            self._cache[dataset] = datasets.load_dataset(self.repo, dataset)
        return self._cache[dataset]

    def splits(self, dataset: str) -> Sequence[str]:
        return list(self._dataset(dataset).keys())

    def load(self, dataset: str, split: str) -> list[dict[str, Any]]:
        table = self._dataset(dataset)[split]
        return [
            check_row(dict(row), f"{self.repo}/{dataset}/{split}[{i}]")
            for i, row in enumerate(table)
        ]


def eval_split(source: QASource, dataset: str) -> str:
    available = set(source.splits(dataset))
    for split in EVAL_SPLIT_PRIORITY:
        if split in available:
            return split
    raise ValueError(f"{dataset}: no test, dev or train split found")
