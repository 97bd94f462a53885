"""Assembly: build the services from settings and hand them to the HTTP application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import delete

from openpan.clock import utcnow
from openpan.db.engine import Database
from openpan.db.migrate import upgrade
from openpan.db.models import Job
from openpan.jobs.runner import InProcessRunner
from openpan.services import tokens, uploads
from openpan.services.context import Context
from openpan.settings import Settings
from openpan.storage import open_store

log = logging.getLogger("openpan")


async def build_context(settings: Settings) -> Context:
    """Open the database (migrated to the newest schema), the blob store and the job runner."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    await upgrade(db.engine)
    store = open_store(settings.effective_storage_url)
    runner = InProcessRunner(db, workers=settings.job_workers)
    ctx = Context(settings=settings, db=db, store=store, jobs=runner)
    ctx.signing_key = await tokens.load_signing_key(db)

    async def finish_upload(payload: dict[str, object]) -> None:
        await uploads.finish_job(ctx, payload)

    runner.register(uploads.FINISH_JOB, finish_upload)
    return ctx


async def sweep(ctx: Context) -> None:
    """Housekeeping: expire abandoned uploads, remove stale temp files and old finished jobs."""
    await uploads.expire_sessions(ctx)
    await ctx.store.cleanup_temp(older_than=24 * 3600)
    async with ctx.db.write() as session:
        await session.execute(
            delete(Job).where(Job.status == "done", Job.updated_at < utcnow() - timedelta(days=1))
        )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Context]:
    """The services, started, for as long as the block lasts (the server's lifespan)."""
    ctx = await build_context(settings)
    await ctx.jobs.start()

    async def sweeper() -> None:
        while True:
            try:
                await sweep(ctx)
            except Exception:
                log.exception("sweep failed")
            await asyncio.sleep(settings.sweep_interval)

    sweeper_task = asyncio.create_task(sweeper())
    try:
        yield ctx
    finally:
        sweeper_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper_task
        await ctx.jobs.stop()
        await ctx.db.dispose()
