"""Every route of the HTTP layer, and the answers for what no route takes."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from openpan.api import (
    auth,
    control,
    copy,
    disk,
    disk_upload,
    download,
    health,
    offline,
    oss,
    public,
    slices,
    transcode,
    web,
    web_pages,
)
from openpan.api.envelope import failure

log = logging.getLogger("openpan.api")

_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


async def not_found(request: Request) -> Response:
    return failure(404, f"接口不存在: {request.url.path} (no such endpoint)", status_code=404)


async def _http_not_found(request: Request, exc: Exception) -> Response:
    return await not_found(request)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    message = f"不支持的请求方法: {request.method} (method not allowed)"
    return failure(405, message, status_code=405)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Logged with its stack here; the client gets the envelope and a trace ID, never a trace.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return failure(1, "服务内部错误 (internal error)")


def all_routes(*, emulator: bool = False) -> list[BaseRoute]:
    """The routes, in the order they are tried: the emulator's control API (in emulator mode
    only; elsewhere its paths are unknown), the API's, the web app's, the envelope for unknown
    API paths, then the public links."""
    return [
        # Off: the control paths are unknown, whatever the method.
        *(
            control.routes
            if emulator
            else [Route("/_openpan/{rest:path}", not_found, methods=_METHODS)]
        ),
        *health.routes,
        *auth.routes,
        *oss.routes,
        *slices.routes,
        *disk.routes,
        *disk_upload.routes,
        *download.routes,
        *copy.routes,
        *offline.routes,
        *transcode.routes,
        *web.routes,
        *web_pages.routes,
        Route("/api/{rest:path}", not_found, methods=_METHODS),
        Route("/upload/{rest:path}", not_found, methods=_METHODS),
        *public.routes,
    ]


# Anything unexpected, unknown paths and methods: the envelope, never Starlette's own pages.
exception_handlers = {
    Exception: _internal_error,
    404: _http_not_found,
    405: _method_not_allowed,
}
