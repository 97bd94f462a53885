"""How an API endpoint is declared: one decorator does auth, rate limits, input and the envelope.

A handler receives the request, its parsed ``Params`` and the authenticated user, calls one
service function, and returns the ``data`` of the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openpan.api.envelope import failure, ok
from openpan.api.params import Params, read_params
from openpan.db.models import User
from openpan.errors import OpenpanError, Unauthorized
from openpan.services import tokens, web_auth
from openpan.services.context import Context
from openpan.services.ratelimit import RateLimiter, SharedRateLimiter

log = logging.getLogger("openpan.api")

ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
Handler = Callable[[Request, Params, User], Awaitable[Any]]
PublicHandler = Callable[[Request, Params], Awaitable[Any]]


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def limiter(request: Request) -> RateLimiter | SharedRateLimiter:
    rate_limiter: RateLimiter | SharedRateLimiter = request.app.state.limiter
    return rate_limiter


async def session_user(request: Request) -> User:
    """The web app's signed-in user: the session cookie, and the session's CSRF token in
    ``X-CSRF-Token`` (a header no other site can make a browser send), on every method."""
    ctx = context(request)
    user, csrf = await web_auth.session_user(ctx, request.cookies.get(web_auth.COOKIE, ""))
    if not web_auth.csrf_matches(csrf, request.headers.get("x-csrf-token")):
        raise Unauthorized(web_auth.CSRF)
    return user


async def authenticate(request: Request) -> User:
    """The caller, from ``Authorization: Bearer`` and ``Platform: open_platform`` — or, with no
    ``Authorization`` at all, from the web app's session (so the page uses this same API)."""
    ctx = context(request)
    authorization = request.headers.get("authorization")
    if authorization is None and web_auth.COOKIE in request.cookies:
        return await session_user(request)
    user = await tokens.authenticate(ctx, authorization)
    platform = request.headers.get("platform", "")
    if platform.strip().lower() != "open_platform":
        raise Unauthorized(
            "access_token无效: 缺少请求头 Platform: open_platform (missing Platform header)"
        )
    return user


def internal_error(request: Request) -> Response:
    """The answer to a failure nobody foresaw: logged with its stack, answered with the envelope.

    Caught here rather than left to Starlette, whose error middleware re-raises after answering
    and so drops the keep-alive connection the client is about to reuse.
    """
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return failure(1, "服务内部错误 (internal error)")


async def answer(request: Request, work: Callable[[], Awaitable[Any]]) -> Response:
    """The envelope around ``work()``: its result as ``data``, an ``OpenpanError`` as its code
    and message, anything else as an internal error."""
    try:
        return ok(await work())
    except OpenpanError as exc:
        refused = failure(exc.code, exc.message)
        if getattr(exc, "close", False):  # a body left unread: the connection cannot go on
            refused.headers["connection"] = "close"
        return refused
    except Exception:
        return internal_error(request)


async def admit(request: Request, path: str) -> User:
    """The caller of ``path``, authenticated and within its rate limit."""
    user = await authenticate(request)
    await limiter(request).check(user.client_id, path, user.vip)
    return user


def endpoint(path: str) -> Callable[[Handler], Route]:
    """An authenticated API endpoint at ``path``, answering any method."""

    def wrap(handler: Handler) -> Route:
        async def work(request: Request) -> Any:
            user = await admit(request, path)
            params = await read_params(request, context(request).settings.max_body_size)
            return await handler(request, params, user)

        async def run(request: Request) -> Response:
            return await answer(request, lambda: work(request))

        return Route(path, run, methods=ALL_METHODS, name=handler.__name__)

    return wrap


def public_endpoint(path: str) -> Callable[[PublicHandler], Route]:
    """An API endpoint that needs no token (only ``/api/v1/access_token``)."""

    def wrap(handler: PublicHandler) -> Route:
        async def work(request: Request) -> Any:
            params = await read_params(request, context(request).settings.max_body_size)
            return await handler(request, params)

        async def run(request: Request) -> Response:
            return await answer(request, lambda: work(request))

        return Route(path, run, methods=ALL_METHODS, name=handler.__name__)

    return wrap
