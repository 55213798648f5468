"""A registry file must be complete to be served: an empty, truncated or half-written file
(no profile or no model) is refused unless it says ``allow_empty: true``; ``router-r1
registry check`` applies the same rule, with a one-line reason and a non-zero exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from router_model.registry import RegistryError
from router_model.registry.checks import emptiness, load_servable
from router_model.registry.loader import parse_registry
from router_r1.cli import app
from tests.fakes.registry import REGISTRY_FILE


def full() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(REGISTRY_FILE.read_text())
    return data


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def models_only() -> dict[str, Any]:
    """What a writer has written when it got past the models but not yet to the profiles."""
    data = full()
    del data["profiles"]
    return data


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("", "no router profile and no model"),
        ("version: 1\n", "no router profile and no model"),
        (dump(models_only()), "no router profile"),
    ],
    ids=["empty", "only-version", "models-only"],
)
def test_an_incomplete_file_is_refused(tmp_path: Path, text: str, missing: str) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    with pytest.raises(RegistryError) as raised:
        load_servable(path, environ={})
    message = str(raised.value)
    assert message.startswith(f"{path}: defines {missing} ")
    assert "allow_empty: true" in message
    assert "\n" not in message


def test_models_without_profiles_name_only_the_profiles() -> None:
    problem = emptiness(parse_registry(dump(models_only()), "r", {}))
    assert problem is not None
    assert problem.startswith("defines no router profile (")


def test_no_models_is_refused_too() -> None:
    spec = parse_registry("endpoints: {e: {base_url: 'http://x.test/v1'}}\n", "r", {})
    assert emptiness(spec) is not None


def test_allow_empty_serves_an_empty_or_passthrough_only_file(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text("allow_empty: true\n")
    assert load_servable(path, environ={}).profiles == ()
    data = models_only()
    data["allow_empty"] = True
    path.write_text(dump(data))
    registry = load_servable(path, environ={})
    assert registry.profiles == ()
    assert len(registry.models) == 6


def test_a_complete_file_is_servable(tmp_path: Path) -> None:
    registry = load_servable(REGISTRY_FILE, environ={})
    assert [p.name for p in registry.profiles] == ["router-r1"]
    assert emptiness(registry.spec) is None


def test_not_utf8_and_unreadable_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_bytes(b"version: 1\nmodels: [\xff\xfe]\n")
    with pytest.raises(RegistryError, match="not UTF-8 text"):
        load_servable(path)
    with pytest.raises(RegistryError, match="cannot read"):
        load_servable(tmp_path / "missing.yaml")


# ---------------------------------------------------------------------------- registry check


def check(path: Path) -> Any:
    return CliRunner().invoke(app, ["registry", "check", str(path)])


@pytest.mark.parametrize("text", ["", dump(models_only())], ids=["empty", "models-only"])
def test_check_fails_on_an_incomplete_file_with_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    result = check(path)
    assert result.exit_code == 1
    assert "OK" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: defines no router profile")


def test_check_accepts_an_explicitly_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text("allow_empty: true\n")
    result = check(path)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{path}: OK, 0 profiles, 0 models"


def test_check_lists_a_complete_file(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY_FILE.read_text())
    result = check(path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{path}: OK, 1 profiles, 6 models\n")
