"""The one settings model: every knob from the environment, one-line errors, the README table."""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from server.settings import (
    ENV_PREFIX,
    Settings,
    SettingsError,
    load_settings,
    nest_flat,
    settings_table,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _every_field() -> list[tuple[str, tuple[str, ...], Any]]:
    """(variable, path, annotation) for every leaf setting, walked from the model itself."""
    leaves: list[tuple[str, tuple[str, ...], Any]] = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub, subfield in annotation.model_fields.items():
                variable = f"{ENV_PREFIX}{name}_{sub}".upper()
                leaves.append((variable, (name, sub), subfield.annotation))
        else:
            leaves.append((f"{ENV_PREFIX}{name}".upper(), (name,), annotation))
    return leaves


def _accepts_any_text(annotation: Any) -> bool:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_accepts_any_text(a) for a in args if a is not type(None))
    if typing.get_origin(annotation) is typing.Annotated:
        return _accepts_any_text(args[0])
    return annotation in (str, Path)


def _value(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for variable in list(os.environ):
        if variable.startswith(ENV_PREFIX):
            monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)  # no stray .env file


@pytest.mark.parametrize(("variable", "path", "annotation"), _every_field(), ids=lambda v: str(v))
def test_every_setting_is_read_from_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, path: tuple[str, ...], annotation: Any
) -> None:
    """The variable the README names reaches the field: a text field takes a probe value (or,
    when it validates its text, refuses it naming that variable); every other field refuses
    garbage with one line naming exactly that variable."""
    if _accepts_any_text(annotation):
        monkeypatch.setenv(variable, "probe-value")
        try:
            value = str(_value(load_settings(), path))
        except SettingsError as refused:
            value = str(refused)
            assert value.startswith(f"{variable}: "), value
        else:
            assert value == "probe-value"
    else:
        monkeypatch.setenv(variable, "!!not-a-value")
        with pytest.raises(SettingsError) as raised:
            load_settings()
        message = str(raised.value)
        assert message.startswith(f"{variable}: "), message
        assert "\n" not in message
        assert "'!!not-a-value'" in message


def test_nested_values_and_flat_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_R1_UPSTREAM_MAX_RETRIES", "0")
    monkeypatch.setenv("ROUTER_R1_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("ROUTER_R1_REGISTRY_RELOAD_INTERVAL_S", "0")  # top-level, not a section
    settings = load_settings(engine_read_timeout_s=7.5)
    assert settings.upstream.max_retries == 0
    assert settings.redis.url == "redis://127.0.0.1:1/0"
    assert settings.registry_reload_interval_s == 0
    assert settings.engine.read_timeout_s == 7.5
    assert nest_flat({"cache_ttl_s": 5, "port": 1}) == {"cache": {"ttl_s": 5}, "port": 1}


def test_several_bad_values_are_one_line_each_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_R1_PORT", "70000")
    monkeypatch.setenv("ROUTER_R1_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    problems = str(raised.value).split("; ")
    assert [p.split(":")[0] for p in problems] == ["ROUTER_R1_PORT", "ROUTER_R1_LOG_FORMAT"]


def test_unknown_section_field_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^ROUTER_R1_UPSTREAM_NO_SUCH_KNOB: "):
        load_settings(upstream_no_such_knob=1)


def test_every_setting_is_documented() -> None:
    undocumented = [row for row in settings_table().splitlines()[2:] if row.endswith("|  |")]
    assert undocumented == []


def test_readme_carries_the_settings_table() -> None:
    """``python -m server.settings`` prints the table; paste it into README.md when it changes."""
    assert settings_table() in README.read_text()
