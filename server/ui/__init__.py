"""The trace viewer: a static page (``static/``: HTML, CSS and vanilla JS shipped as package
data, no build step, nothing from a CDN) served at ``/ui`` that lists recent requests
(``GET /v1/router/traces``) and draws one request's trace (``GET /v1/router/traces/{id}``)
as a timeline. It calls the API with the key entered once in the page.
"""

from server.ui.router import STATIC_DIR, TraceViewerFiles, mount_trace_viewer

__all__ = ["STATIC_DIR", "TraceViewerFiles", "mount_trace_viewer"]
