"""The alert rules pass ``promtool check rules`` and their unit tests (``promtool test rules``,
deploy/prometheus/alerts_test.yml); both compose stacks' Prometheus load them; the metrics
they use are the gateway's."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from server.metrics import Metrics
from tests.deploy.compose import COMPOSE, COMPOSE_CPU, REPO, active_services, bind_mounts, merged

RULES_DIR = REPO / "deploy" / "prometheus"
ALERTS = RULES_DIR / "alerts.yml"
ALERTS_TEST = RULES_DIR / "alerts_test.yml"
METRIC = re.compile(r"\b(router_r1_[a-z0-9_]+)\b")
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        raise AssertionError("promtool is missing: run scripts/bootstrap.sh (apt prometheus)")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_are_valid() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_the_issue_asks_for_is_there() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}
    assert set(alerts) >= {
        "RouterR1PolicyEngineDown",
        "RouterR1RequestErrorRatioHigh",
        "RouterR1UpstreamFailureRatioHigh",
        "RouterR1OverheadP99High",
        "RouterR1SpendOverBudget",
        "RouterR1RegistryReloadFailing",
        "RouterR1ApiKeyReloadFailing",
        "RouterR1UpstreamBreakerOpen",
    }
    tested = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tested
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == set(alerts), "every alert has a test in which it fires"
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"], name


def test_the_rules_use_only_the_gateways_metrics() -> None:
    exported = {
        family.name + suffix for family in Metrics().registry.collect() for suffix in SUFFIXES
    }
    used = set(METRIC.findall(ALERTS.read_text()))
    assert used, "no router_r1_ metric in the rules"
    assert sorted(used - exported) == []


@pytest.mark.parametrize("stack", ["gpu", "cpu"])
def test_compose_prometheus_loads_the_rules(stack: str, tmp_path: Path) -> None:
    files = (COMPOSE,) if stack == "gpu" else (COMPOSE, COMPOSE_CPU)
    prometheus = active_services(merged(*files))["prometheus"]
    mounts = {
        target: REPO / source.removeprefix("./") for source, target in bind_mounts(prometheus)
    }
    config_file = mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_file.read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert mounts["/etc/prometheus/alerts.yml"] == ALERTS
    # the whole config is valid for this Prometheus, rules included (paths made local)
    local = {**config, "rule_files": [str(ALERTS)]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(local))
    result = promtool("check", "config", "--syntax-only", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
