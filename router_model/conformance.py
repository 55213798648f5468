"""Check this implementation against the reference conformance cases."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router_model.protocol.answer import extract_answer
from router_model.protocol.names import legacy_resolver, legacy_upstream_temperature
from router_model.protocol.turn import parse_action
from router_model.rewards.combine import Metric, combined_reward
from router_model.rewards.cost import CostNormalizer
from router_model.rewards.format import format_reward, legacy_valid_model
from router_model.rewards.outcome import exact_match, f1_score
from router_model.rewards.routes import count_routes

FLOAT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Mismatch:
    """One field of one case that disagrees with the reference."""

    kind: str
    case: Any
    field: str
    expected: Any
    got: Any

    def __str__(self) -> str:
        return (
            f"{self.kind}[{self.case}].{self.field}: expected {self.expected!r}, got {self.got!r}"
        )


@dataclass
class KindCounts:
    """Passed and failed cases of one kind."""

    passed: int = 0
    failed: int = 0


@dataclass
class ConformanceReport:
    """Per-kind counts and every mismatch."""

    kinds: dict[str, KindCounts] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.kinds.values())

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.kinds.values())

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.mismatches

    def lines(self) -> list[str]:
        """``kind: P passed, F failed`` per kind, then ``N passed, M failed``."""
        out = [f"{k}: {c.passed} passed, {c.failed} failed" for k, c in self.kinds.items()]
        out.append(f"{self.passed} passed, {self.failed} failed")
        return out


def load_cases(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL case file (blank lines skipped)."""
    cases: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                cases.append(json.loads(line))
    return cases


def _same(expected: Any, got: Any) -> bool:
    numbers = (int, float)
    if isinstance(expected, numbers) and isinstance(got, numbers):
        return abs(float(expected) - float(got)) <= FLOAT_TOLERANCE
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(map(_same, expected, got))
    return bool(expected == got)


Computed = dict[str, Any]


def _trajectory(case: Mapping[str, Any]) -> Computed:
    response: str = case["response"]
    golds: list[str] = case["golden_answers"]
    valid = legacy_valid_model()
    fmt = format_reward(response, valid)
    answer = extract_answer(response)
    em = exact_match(answer, golds) if answer is not None else 0
    f1 = f1_score(answer, golds) if answer is not None else 0.0
    got: Computed = {
        "format_reward": fmt,
        "route_count": count_routes(response, valid),
        "extracted_answer": answer,
        "em": em,
        "f1": f1,
    }
    outcomes: dict[str, float] = {"em": em, "f1": f1}
    for key in case.get("reward", {}):
        metric_name, _, alpha = key.partition("@")
        if metric_name not in ("em", "f1"):
            raise ValueError(f"unknown reward key {key!r}")
        metric: Metric = "em" if metric_name == "em" else "f1"
        got[f"reward[{key}]"] = combined_reward(
            fmt, outcomes[metric], float(case["cost_reward"]), float(alpha), metric
        )
    return got


def _trajectory_expected(case: Mapping[str, Any]) -> Computed:
    expected = {k: case[k] for k in ("format_reward", "route_count", "extracted_answer")}
    expected |= {k: case[k] for k in ("em", "f1")}
    for key, value in case.get("reward", {}).items():
        expected[f"reward[{key}]"] = value
    return expected


def _turn(case: Mapping[str, Any]) -> Computed:
    action = parse_action(case["turn"])
    return {"action": action.kind.value if action.kind else None, "content": action.content}


def _cost(case: Mapping[str, Any]) -> Computed:
    normalizer = CostNormalizer()
    return {"cost_rewards": [normalizer.score(float(raw)) for raw in case["raw_costs"]]}


def _legacy_name(case: Mapping[str, Any]) -> Computed:
    api_model = legacy_resolver().resolve(case["name"]) or ""
    return {"api_model": api_model, "temperature": legacy_upstream_temperature(api_model)}


def _fields(*names: str) -> Callable[[Mapping[str, Any]], Computed]:
    return lambda case: {name: case[name] for name in names}


_KINDS: dict[str, tuple[Callable[[Mapping[str, Any]], Computed], ...]] = {
    "trajectory": (_trajectory, _trajectory_expected),
    "turn": (_turn, _fields("action", "content")),
    "cost_normalization": (_cost, _fields("cost_rewards")),
    "legacy_name": (_legacy_name, _fields("api_model", "temperature")),
}


def _check(kind: str, case_id: Any, case: Mapping[str, Any]) -> list[Mismatch]:
    handlers = _KINDS.get(kind)
    if handlers is None:
        return [Mismatch(kind, case_id, "kind", "a known kind", kind)]
    compute, expect = handlers
    try:
        got = compute(case)
        expected = expect(case)
    except Exception as exc:  # a crash on one case is a mismatch, not a crashed run
        return [Mismatch(kind, case_id, "<error>", None, repr(exc))]
    return [
        Mismatch(kind, case_id, name, value, got.get(name))
        for name, value in expected.items()
        if not _same(value, got.get(name))
    ]


def run_conformance(cases: Iterable[Mapping[str, Any]]) -> ConformanceReport:
    """Run every case; the report counts a case as passed when all its fields agree."""
    report = ConformanceReport()
    for index, case in enumerate(cases):
        kind = str(case.get("kind"))
        case_id = case.get("id", index)
        mismatches = _check(kind, case_id, case)
        counts = report.kinds.setdefault(kind, KindCounts())
        if mismatches:
            counts.failed += 1
            report.mismatches.extend(mismatches)
        else:
            counts.passed += 1
    return report
