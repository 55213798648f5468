"""``router-r1 data prepare``: the training parquet and the evaluation sets.

Reference sampling, kept exactly: Python's ``random`` seeded 42; the training set draws
``random.sample(range(len(split)), 7000)`` from NQ's then HotpotQA's train split with ONE
generator (in that order); each evaluation set is drawn by its own run (a fresh generator
seeded 42) from its test split (else dev, else train), 500 questions, and a set with no
more than that (Bamboogle's 125) is kept whole, in order, without drawing.

Rows follow the reference schema ``{data_source, prompt: [{role: user, content}], ability,
reward_model: {style: rule, ground_truth: {target: [golds]}}, extra_info: {split, index}}``
with the policy prompt rendered from a registry profile, plus the columns the reference's
``datasets.map`` kept (``id``, ``question``, ``golden_answers``) and
``extra_info.question``: the agent loop renders the prompt from the question itself.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_model.data.flashrag import EVAL_SETS, TRAIN_SETS, QASource, eval_split
from router_model.protocol.prompt import fill_policy_prompt, normalize_question
from router_model.registry import Registry

SEED = 42
TRAIN_PER_SET = 7000
EVAL_PER_SET = 500
ABILITY = "fact-reasoning"


@dataclass(frozen=True)
class PreparedFile:
    path: Path
    rows: int
    data_sources: tuple[str, ...]


def sample_rows(rows: list[dict[str, Any]], size: int, rng: random.Random) -> list[dict[str, Any]]:
    """The reference draw: ``rng.sample`` of indices when there are more rows than ``size``."""
    if len(rows) <= size:
        return list(rows)
    return [rows[i] for i in rng.sample(range(len(rows)), size)]


def to_reference_row(
    row: dict[str, Any], data_source: str, split: str, index: int, template: str
) -> dict[str, Any]:
    question = normalize_question(row["question"])
    golds = [str(g) for g in row["golden_answers"]]
    return {
        "id": str(row.get("id", f"{data_source}-{split}-{index}")),
        "question": row["question"],
        "golden_answers": golds,
        "data_source": data_source,
        "prompt": [{"role": "user", "content": fill_policy_prompt(template, question)}],
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": {"target": golds}},
        "extra_info": {"split": split, "index": index, "question": question},
    }


def write_parquet(rows: Sequence[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(pa.Table.from_pylist(list(rows)), tmp)
    tmp.replace(path)


def read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


def prepare(
    source: QASource,
    out_dir: Path,
    registry: Registry,
    profile_name: str = "router-r1",
    *,
    train_sets: Sequence[str] = TRAIN_SETS,
    eval_sets: Sequence[str] = EVAL_SETS,
    train_per_set: int = TRAIN_PER_SET,
    eval_per_set: int = EVAL_PER_SET,
    seed: int = SEED,
) -> list[PreparedFile]:
    """Write ``train_nh_<variant>.parquet`` and ``test_<set>_<variant>.parquet`` files."""
    profile = registry.profile(profile_name)
    if profile is None:
        raise ValueError(f"registry {registry.source} has no profile {profile_name!r}")
    template = registry.policy_template(profile)
    variant = profile.template
    written: list[PreparedFile] = []

    if train_sets:
        rng = random.Random(seed)
        train_rows: list[dict[str, Any]] = []
        for name in train_sets:
            picked = sample_rows(source.load(name, "train"), train_per_set, rng)
            train_rows += [
                to_reference_row(row, name, "train", i, template) for i, row in enumerate(picked)
            ]
        path = out_dir / f"train_nh_{variant}.parquet"
        write_parquet(train_rows, path)
        written.append(PreparedFile(path, len(train_rows), tuple(train_sets)))

    for name in eval_sets:
        split = eval_split(source, name)
        picked = sample_rows(source.load(name, split), eval_per_set, random.Random(seed))
        rows = [to_reference_row(row, name, split, i, template) for i, row in enumerate(picked)]
        path = out_dir / f"test_{name}_{variant}.parquet"
        write_parquet(rows, path)
        written.append(PreparedFile(path, len(rows), (name,)))

    manifest = {
        "seed": seed,
        "profile": profile_name,
        "template": variant,
        "files": [
            {"path": f.path.name, "rows": f.rows, "sets": list(f.data_sources)} for f in written
        ],
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return written
