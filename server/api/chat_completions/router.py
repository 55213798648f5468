"""``POST /v1/chat/completions``: the thin HTTP layer; the work is in :mod:`.serving`.

The route is declared on an ``APIRouter`` (the OpenAPI schema lists it, and an app that only
includes the router still serves it), but the gateway answers it from
:class:`ChatCompletionsFastPath`, a pure ASGI middleware in front of FastAPI's exception
middleware, router and request/response wrapper. Those layers do nothing for this route (it
has no dependencies or path parameters, and every failure is mapped to the OpenAI envelope
here) yet were a quarter of the proxy's CPU per passthrough request. Both ways run the same
:func:`chat_completions`; other methods and paths go on to FastAPI (405, 404, ...).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.api.chat_completions.serving import create_chat_completion
from server.errors import error_response

PATH = "/v1/chat/completions"


async def chat_completions(request: Request) -> Response:
    try:
        return await create_chat_completion(request)
    except Exception as exc:  # create_chat_completion maps its own; this is the last guard
        return error_response(exc)


router = APIRouter()
router.add_api_route(PATH, chat_completions, methods=["POST"], response_model=None)


class ChatCompletionsFastPath:
    """Serves ``POST /v1/chat/completions`` before FastAPI's routing; see the module docs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _is_chat_path(scope):
            response = await chat_completions(Request(scope, receive, send))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_chat_path(scope: Scope) -> bool:
    # ASGI servers put root_path into path (uvicorn does); older ones did not: accept both
    path: str = scope["path"]
    return path == PATH or path == scope.get("root_path", "") + PATH
