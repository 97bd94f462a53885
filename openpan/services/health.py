"""Readiness: whether this process can serve, for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging

from openpan.services.context import Context

log = logging.getLogger("openpan.health")

PROBE_TIMEOUT = 5.0


async def problems(ctx: Context) -> list[str]:
    """What does not answer within ``PROBE_TIMEOUT``: ``database``, ``storage``, or nothing."""
    probes = {"database": ctx.db.ping, "storage": ctx.store.check}
    found: list[str] = []
    for name, probe in probes.items():
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await probe()
        except Exception as exc:
            log.warning("readiness: %s: %s", name, exc)
            found.append(name)
    return found
