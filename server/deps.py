"""Request-scoped access to the app state, and the one way every endpoint authenticates.

FastAPI endpoints take ``StateDep`` / ``CallerDep``; the chat fast path (pure ASGI, no
dependency injection) calls :func:`app_state` and :func:`authenticate` itself: the same
functions, so authentication is done one way everywhere.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from server.auth.access import Caller
from server.state import AppState

STATE_KEY = "router_r1"


def app_state(connection: HTTPConnection) -> AppState:
    """The state the lifespan built (``app.state.router_r1``)."""
    state: AppState = getattr(connection.app.state, STATE_KEY)
    return state


def authenticate(state: AppState, headers: Headers) -> Caller:
    """The caller of a request (401 without a valid key, unless in open mode)."""
    return state.access.authenticate(headers.get("authorization"))


def _caller(connection: HTTPConnection) -> Caller:
    return authenticate(app_state(connection), connection.headers)


StateDep = Annotated[AppState, Depends(app_state)]
CallerDep = Annotated[Caller, Depends(_caller)]
