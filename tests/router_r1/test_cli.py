"""The ``router-r1`` console script, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "router_model" / "router_r1_cases.jsonl"
CLI = Path(sys.executable).parent / "router-r1"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )


def test_conformance_every_case_agrees() -> None:
    result = _run("conformance", str(CASES))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert "trajectory: 300 passed, 0 failed" in lines
    assert "turn: 100 passed, 0 failed" in lines
    assert "cost_normalization: 10 passed, 0 failed" in lines
    assert "legacy_name: 25 passed, 0 failed" in lines
    assert lines[-1] == "435 passed, 0 failed"


def test_conformance_reports_a_mismatch_and_fails(tmp_path: Path) -> None:
    cases = [json.loads(line) for line in CASES.read_text().splitlines()]
    turn = next(c for c in cases if c["kind"] == "turn" and c["action"] == "answer")
    turn["content"] = turn["content"] + " (tampered)"
    tampered = tmp_path / "cases.jsonl"
    tampered.write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    result = _run("conformance", str(tampered))
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1] == "434 passed, 1 failed"
    assert "MISMATCH" in result.stdout


def test_conformance_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    result = _run("conformance", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2
    assert "nope.jsonl" in result.stderr
    assert "Traceback" not in result.stderr


def test_registry_check_lists_profiles_and_models() -> None:
    result = _run("registry", "check", str(ROOT / "model_registry.yaml"))
    assert result.returncode == 0, result.stderr
    assert "1 profiles, 6 models" in result.stdout
    assert "profile router-r1: policy ulab-ai/Router-R1-Qwen2.5-3B-Instruct" in result.stdout
    assert "model Gemma-2-27B-Instruct: google/gemma-2-27b-it" in result.stdout


def test_registry_check_bad_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "model_registry.yaml"
    text = (ROOT / "model_registry.yaml").read_text()
    bad.write_text(text.replace("    upstream_model: google/gemma-2-27b-it\n", ""))
    result = _run("registry", "check", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "models[5] ('Gemma-2-27B-Instruct'): upstream_model is missing" in result.stderr


def test_version_is_the_distributions() -> None:
    from importlib.metadata import version

    result = _run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"router-r1 {version('router-r1-proxy')}"
