"""The HTTP layer: parse, call one service function, shape the answer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from openpan.api import (
    auth,
    copy,
    disk,
    disk_upload,
    download,
    health,
    offline,
    oss,
    public,
    slices,
)
from openpan.api.envelope import failure
from openpan.app import running
from openpan.services.ratelimit import make_limiter
from openpan.settings import Settings

log = logging.getLogger("openpan.api")


def create_app(settings: Settings) -> Starlette:
    """The ASGI application for ``settings``; services start with its lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running(settings) as ctx:
            app.state.ctx = ctx
            app.state.limiter = make_limiter(ctx.db, enabled=settings.rate_limit)
            yield

    async def not_found(request: Request) -> Response:
        return failure(404, f"接口不存在: {request.url.path} (no such endpoint)", status_code=404)

    async def http_not_found(request: Request, exc: Exception) -> Response:
        return await not_found(request)

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        message = f"不支持的请求方法: {request.method} (method not allowed)"
        return failure(405, message, status_code=405)

    async def internal_error(request: Request, exc: Exception) -> Response:
        # Logged with its stack here; the client gets the envelope and a trace ID, never a trace.
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return failure(1, "服务内部错误 (internal error)")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes: list[Route] = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        *health.routes,
        *auth.routes,
        *oss.routes,
        *slices.routes,
        # Cloud disk, download links, copy tasks, offline downloads: their route lists go here.
        *disk.routes,
        *disk_upload.routes,
        *download.routes,
        *copy.routes,
        *offline.routes,
        Route("/api/{rest:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/upload/{rest:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        *public.routes,
    ]
    # A Starlette that answers direct links before its middleware and routing.
    return public.DirectLinksFirst(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            Exception: internal_error,
            404: http_not_found,
            405: method_not_allowed,
        },
    )
