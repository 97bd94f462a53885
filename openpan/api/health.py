"""Probes for load balancers and orchestrators (plain text, no token, no envelope).

``/healthz`` (liveness) answers as long as the process serves HTTP. ``/readyz`` (readiness)
also checks that the database and the blob store answer, so a load balancer sends traffic only
to processes that can serve it.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from openpan.api.routing import context

log = logging.getLogger("openpan.api")

PROBE_TIMEOUT = 5.0


async def readyz(request: Request) -> Response:
    ctx = context(request)
    problems: list[str] = []
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), ctx.db.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("readiness: database: %s", exc)
        problems.append("database")
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await ctx.store.check()
    except Exception as exc:
        log.warning("readiness: blob store: %s", exc)
        problems.append("storage")
    if problems:
        return PlainTextResponse(f"not ready: {', '.join(problems)}", status_code=503)
    return PlainTextResponse("ready")


routes = [Route("/readyz", readyz, methods=["GET", "HEAD"])]
