from pathlib import Path

import pytest

from router_model.conformance import load_cases, run_conformance

CASES_PATH = Path(__file__).with_name("router_r1_cases.jsonl")
EXPECTED_KINDS = {"trajectory": 300, "turn": 100, "cost_normalization": 10, "legacy_name": 25}


@pytest.fixture(scope="module")
def cases() -> list[dict[str, object]]:
    return load_cases(CASES_PATH)


def test_case_file_has_every_kind(cases: list[dict[str, object]]) -> None:
    counts: dict[str, int] = {}
    for case in cases:
        counts[str(case["kind"])] = counts.get(str(case["kind"]), 0) + 1
    assert counts == EXPECTED_KINDS


@pytest.mark.parametrize("kind", sorted(EXPECTED_KINDS))
def test_every_reference_case_agrees(cases: list[dict[str, object]], kind: str) -> None:
    report = run_conformance(c for c in cases if c["kind"] == kind)
    details = "\n".join(str(m) for m in report.mismatches[:40])
    assert report.ok, f"{len(report.mismatches)} mismatches:\n{details}"
    assert report.kinds[kind].passed == EXPECTED_KINDS[kind]


def test_report_lines(cases: list[dict[str, object]]) -> None:
    lines = run_conformance(cases).lines()
    assert lines[-1] == "435 passed, 0 failed"
    assert "trajectory: 300 passed, 0 failed" in lines
    assert len(lines) == len(EXPECTED_KINDS) + 1


def test_report_records_mismatches() -> None:
    bad_turn = {"kind": "turn", "turn": "<answer> x </answer>", "action": "search", "content": "x"}
    bad_name = {"kind": "legacy_name", "name": "qwen", "api_model": "", "temperature": 0}
    report = run_conformance([bad_turn, bad_name, {"kind": "mystery"}])
    assert not report.ok
    assert report.lines()[-1] == "0 passed, 3 failed"
    fields = {(m.kind, m.case, m.field) for m in report.mismatches}
    assert fields == {
        ("turn", 0, "action"),
        ("legacy_name", 1, "api_model"),
        ("mystery", 2, "kind"),
    }


def test_float_tolerance() -> None:
    case = {"kind": "cost_normalization", "raw_costs": [0, 4], "cost_rewards": [0.5, 0.0000005]}
    assert run_conformance([case]).ok
    case["cost_rewards"] = [0.5, 0.00001]
    assert not run_conformance([case]).ok
