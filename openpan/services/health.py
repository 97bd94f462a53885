"""Readiness: whether this process can serve, for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging

from openpan.services.context import Context

log = logging.getLogger("openpan.health")

PROBE_TIMEOUT = 5.0


async def problems(ctx: Context) -> list[str]:
    """What does not answer within ``PROBE_TIMEOUT``: ``database``, ``storage``, or nothing."""
    found: list[str] = []
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await ctx.db.ping()
    except Exception as exc:
        log.warning("readiness: database: %s", exc)
        found.append("database")
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await ctx.store.check()
    except Exception as exc:
        log.warning("readiness: blob store: %s", exc)
        found.append("storage")
    return found
