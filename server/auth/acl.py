"""What a key may use: the router profiles and registry models its entry lists.

A key file entry may list ``profiles:`` and ``models:`` (see :mod:`server.auth.keys`); a name
it does not list is refused with 403 (``permission_error``, code ``model_not_allowed``) and is
not shown by ``/v1/models``. An entry without the list may use every profile (or model); open
mode's anonymous caller may use everything. A profile's pool and fallback models are part of
the profile: a key that may use the profile needs no access to them.
"""

from __future__ import annotations

from server.auth.access import Caller
from server.errors import APIError


def may_use_profile(caller: Caller, name: str) -> bool:
    allowed = None if caller.key is None else caller.key.profiles
    return allowed is None or name in allowed


def may_use_model(caller: Caller, name: str) -> bool:
    allowed = None if caller.key is None else caller.key.models
    return allowed is None or name in allowed


def not_allowed(caller: Caller, name: str) -> APIError:
    return APIError(
        403,
        f"API key {caller.id!r} may not use the model {name!r}: GET /v1/models lists what it "
        f"may use.",
        param="model",
        code="model_not_allowed",
    )


def check_profile(caller: Caller, name: str) -> None:
    if not may_use_profile(caller, name):
        raise not_allowed(caller, name)


def check_model(caller: Caller, name: str) -> None:
    if not may_use_model(caller, name):
        raise not_allowed(caller, name)
