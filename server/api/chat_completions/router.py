"""``POST /v1/chat/completions``: the thin HTTP route; the work is in :mod:`.serving`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from server.api.chat_completions.serving import create_chat_completion
from server.errors import error_response

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(request: Request) -> Response:
    try:
        return await create_chat_completion(request)
    except Exception as exc:  # every failure becomes the OpenAI envelope, logged once
        return error_response(exc)
