"""Key entries listing the profiles and models they may use, and ``router-r1 keys new``."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from router_r1.cli import app
from server.auth import ApiKey, Caller, hash_key
from server.auth.acl import check_model, may_use_model, may_use_profile
from server.errors import APIError


def caller(**fields: object) -> Caller:
    key = ApiKey.model_validate({"id": "team-a", "sha256": hash_key("k"), **fields})
    return Caller(key.id, key)


def test_absent_lists_allow_everything_and_empty_ones_nothing() -> None:
    everything = caller()
    assert may_use_profile(everything, "router-r1")
    assert may_use_model(everything, "Qwen2.5-7B-Instruct")
    nothing = caller(profiles=[], models=[])
    assert not may_use_profile(nothing, "router-r1")
    assert not may_use_model(nothing, "Qwen2.5-7B-Instruct")
    assert may_use_model(Caller("anonymous"), "anything")  # open mode


def test_listed_names_are_exact() -> None:
    some = caller(profiles=["router-r1"], models=["Qwen2.5-7B-Instruct"])
    assert may_use_profile(some, "router-r1")
    assert not may_use_profile(some, "Router-R1")
    assert may_use_model(some, "Qwen2.5-7B-Instruct")
    with pytest.raises(APIError) as info:
        check_model(some, "Gemma-2-27B-Instruct")
    assert (info.value.status_code, info.value.type, info.value.code) == (
        403,
        "permission_error",
        "model_not_allowed",
    )


def test_keys_new_writes_the_lists() -> None:
    result = CliRunner().invoke(
        app, ["keys", "new", "team-a", "--profile", "router-r1", "--model", "A", "--model", "B"]
    )
    assert result.exit_code == 0, result.output
    (entry,) = yaml.safe_load(result.stdout)
    assert entry["profiles"] == ["router-r1"]
    assert entry["models"] == ["A", "B"]
    assert ApiKey.model_validate(entry).models == ("A", "B")
