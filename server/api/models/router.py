"""``GET /v1/models``: router profiles and registry models, in the OpenAI list shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from router_model.registry import Registry
from server.auth.access import Caller
from server.auth.acl import may_use_model, may_use_profile, not_allowed
from server.deps import CallerDep, StateDep
from server.errors import model_not_found

router = APIRouter()

_CREATED = 1_735_689_600  # fixed: the registry has no creation times


def _profile_card(registry: Registry, name: str) -> dict[str, Any] | None:
    profile = registry.profile(name)
    if profile is None:
        return None
    return {
        "id": profile.name,
        "object": "model",
        "created": _CREATED,
        "owned_by": "router-r1",
        "router": {
            "description": profile.description,
            "policy_model": profile.policy.model,
            "engine": profile.policy.engine,
            "template": profile.template,
            "pool": list(profile.pool),
            "cost_coefficient": profile.cost_coefficient,
        },
    }


def _model_card(registry: Registry, name: str) -> dict[str, Any] | None:
    model = registry.model(name)
    if model is None:
        return None
    return {
        "id": model.name,
        "object": "model",
        "created": _CREATED,
        "owned_by": "upstream",
        "upstream_model": model.deployments[0].upstream_model,
        "description": model.description,
        "pricing": model.pricing_of().model_dump(exclude_none=True),
        "limits": model.limits.model_dump(exclude_none=True),
        "facts": model.facts.model_dump(exclude_none=True),
    }


def _allowed(caller: Caller, registry: Registry, name: str) -> bool:
    if registry.profile(name) is not None:
        return may_use_profile(caller, name)
    return may_use_model(caller, name)


@router.get("/v1/models")
async def list_models(state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """What the calling key may use (its entry's ``profiles``/``models``; all by default)."""
    registry = state.registry.get()
    cards = [_profile_card(registry, p.name) for p in registry.profiles]
    cards += [_model_card(registry, m.name) for m in registry.models]
    allowed = [
        card for card in cards if card is not None and _allowed(caller, registry, card["id"])
    ]
    return {"object": "list", "data": allowed}


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    registry = state.registry.get()
    card = _profile_card(registry, model_id) or _model_card(registry, model_id)
    if card is None:
        raise model_not_found(model_id)
    if not _allowed(caller, registry, model_id):
        raise not_allowed(caller, model_id)
    return card
