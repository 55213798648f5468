"""``data prepare`` on small FlashRAG-layout files the test writes (no network)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from router_model.data import LocalSource, eval_split, prepare, read_parquet
from router_model.protocol.prompt import fill_policy_prompt
from tests.fakes.registry import default_registry


def _write(root: Path, name: str, split: str, count: int) -> list[dict[str, Any]]:
    rows = [
        {
            "id": f"{name}-{split}-{i}",
            "question": f" {name} question {i} ",
            "golden_answers": [f"a{i}"],
        }
        for i in range(count)
    ]
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


@pytest.fixture
def source(tmp_path: Path) -> LocalSource:
    root = tmp_path / "flashrag"
    _write(root, "nq", "train", 12)
    _write(root, "nq", "test", 9)
    _write(root, "hotpotqa", "train", 10)
    _write(root, "hotpotqa", "dev", 8)
    _write(root, "bamboogle", "test", 3)
    return LocalSource(root)


def test_prepare_reference_sampling_and_schema(source: LocalSource, tmp_path: Path) -> None:
    registry = default_registry()
    out = tmp_path / "data"
    files = prepare(
        source,
        out,
        registry,
        eval_sets=("nq", "hotpotqa", "bamboogle"),
        train_per_set=5,
        eval_per_set=4,
    )
    assert [f.path.name for f in files] == [
        "train_nh_qwen.parquet",
        "test_nq_qwen.parquet",
        "test_hotpotqa_qwen.parquet",
        "test_bamboogle_qwen.parquet",
    ]
    # training: ONE generator seeded 42 draws from nq, then from hotpotqa
    rng = random.Random(42)
    nq_ids = rng.sample(range(12), 5)
    hp_ids = rng.sample(range(10), 5)
    train = read_parquet(out / "train_nh_qwen.parquet")
    assert [r["id"] for r in train] == [f"nq-train-{i}" for i in nq_ids] + [
        f"hotpotqa-train-{i}" for i in hp_ids
    ]
    profile = registry.profile("router-r1")
    assert profile is not None
    template = registry.policy_template(profile)
    first = train[0]
    assert first["data_source"] == "nq"
    assert first["ability"] == "fact-reasoning"
    assert first["prompt"] == [
        {"role": "user", "content": fill_policy_prompt(template, f"nq question {nq_ids[0]}?")}
    ]
    assert first["reward_model"] == {"style": "rule", "ground_truth": {"target": [f"a{nq_ids[0]}"]}}
    assert first["extra_info"] == {
        "split": "train",
        "index": 0,
        "question": f"nq question {nq_ids[0]}?",
    }
    assert [r["extra_info"]["index"] for r in train] == [0, 1, 2, 3, 4] * 2

    # evaluation: each set drawn by a fresh generator seeded 42, from test, else dev
    nq = read_parquet(out / "test_nq_qwen.parquet")
    assert [r["id"] for r in nq] == [f"nq-test-{i}" for i in random.Random(42).sample(range(9), 4)]
    hp = read_parquet(out / "test_hotpotqa_qwen.parquet")
    assert {r["extra_info"]["split"] for r in hp} == {"dev"}
    assert [r["id"] for r in hp] == [
        f"hotpotqa-dev-{i}" for i in random.Random(42).sample(range(8), 4)
    ]
    # a set no larger than the sample size is kept whole, in order (Bamboogle's 125)
    bam = read_parquet(out / "test_bamboogle_qwen.parquet")
    assert [r["id"] for r in bam] == ["bamboogle-test-0", "bamboogle-test-1", "bamboogle-test-2"]

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 42
    assert [f["rows"] for f in manifest["files"]] == [10, 4, 4, 3]


def test_eval_split_priority(source: LocalSource) -> None:
    assert eval_split(source, "nq") == "test"
    assert eval_split(source, "hotpotqa") == "dev"
    with pytest.raises(ValueError, match="no test, dev or train"):
        eval_split(source, "musique")


def test_bad_rows_are_one_line_errors(tmp_path: Path) -> None:
    folder = tmp_path / "nq"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps({"question": "q", "golden_answers": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"train.jsonl:1: 'golden_answers'"):
        LocalSource(tmp_path).load("nq", "train")


def test_unknown_profile(source: LocalSource, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no profile"):
        prepare(source, tmp_path, default_registry(), "nope")
