"""``router-r1 data prepare`` from a local FlashRAG-layout directory."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from router_model.data import read_parquet
from router_r1.cli import app
from tests.fakes.registry import REGISTRY_FILE


def test_prepare_command(tmp_path: Path) -> None:
    for name, split in (("nq", "train"), ("hotpotqa", "train"), ("nq", "test")):
        folder = tmp_path / "src" / name
        folder.mkdir(parents=True, exist_ok=True)
        rows = [{"id": str(i), "question": f"q{i}", "golden_answers": ["a"]} for i in range(6)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "data",
            "prepare",
            "--source",
            str(tmp_path / "src"),
            "--out",
            str(out),
            "--registry",
            str(REGISTRY_FILE),
            "--eval-sets",
            "nq",
            "--train-per-set",
            "4",
            "--eval-per-set",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "train_nh_qwen.parquet: 8 rows (nq, hotpotqa)" in result.output
    assert len(read_parquet(out / "test_nq_qwen.parquet")) == 5
    missing = CliRunner().invoke(
        app,
        [
            "data",
            "prepare",
            "--source",
            str(tmp_path / "src"),
            "--out",
            str(out),
            "--registry",
            str(REGISTRY_FILE),
            "--eval-sets",
            "musique",
        ],
    )
    assert missing.exit_code == 1
    assert "musique" in missing.output
