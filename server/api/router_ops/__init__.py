"""``GET /v1/router/traces/{request_id}`` and ``GET /v1/router/usage``."""

from server.api.router_ops.router import router

__all__ = ["router"]
