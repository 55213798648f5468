"""``GET /metrics``."""

from server.api.metrics.router import router

__all__ = ["router"]
