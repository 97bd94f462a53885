"""Probes for load balancers and orchestrators (plain text, no token, no envelope).

``/healthz`` (liveness) answers as long as the process serves HTTP. ``/readyz`` (readiness)
also checks that the database and the blob store answer, so a load balancer sends traffic only
to processes that can serve it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from openpan.api.routing import context
from openpan.services import health


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    problems = await health.problems(context(request))
    if problems:
        return PlainTextResponse(f"not ready: {', '.join(problems)}", status_code=503)
    return PlainTextResponse("ready")


routes = [
    Route("/healthz", healthz, methods=["GET", "HEAD"]),
    Route("/readyz", readyz, methods=["GET", "HEAD"]),
]
