"""Assembly: the services built from settings, their background work, and the ASGI application
that serves them (``create_app``, what ``openpan serve`` runs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import delete
from starlette.applications import Starlette
from starlette.types import ASGIApp

from openpan.api import public
from openpan.api.emulation import Emulated
from openpan.api.routes import all_routes, exception_handlers
from openpan.clock import utcnow
from openpan.db.engine import Database
from openpan.db.migrate import upgrade
from openpan.db.models import Job
from openpan.db.statuses import JobStatus
from openpan.jobs.roles import Role, default_role, make_runner
from openpan.jobs.runner import settle_current_job
from openpan.services import (
    callbacks,
    copy_tasks,
    emulation_store,
    offline,
    tokens,
    uploads,
    web_auth,
)
from openpan.services.context import Context
from openpan.services.daily_traffic import DailyTraffic
from openpan.services.emulation import Emulation
from openpan.services.ratelimit import make_limiter
from openpan.services.traffic import FileTraffic
from openpan.settings import Settings
from openpan.storage import open_store

log = logging.getLogger("openpan")


async def build_context(settings: Settings, role: Role | None = None) -> Context:
    """Open the database (migrated to the newest schema), the blob store and the job runner.

    ``role`` (default: from the settings) says what this process does: ``all`` (embedded: API
    and in-process jobs), ``api`` or ``worker`` (scale-out: ``OPENPAN_QUEUE_URL`` is set).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    await upgrade(db.engine)
    store = open_store(
        settings.effective_storage_url,
        temp_dir=settings.data_dir / "tmp",
        slice_size=settings.slice_size,
    )
    # Downloads get workers of their own (as many as may run at once), so they never hold up
    # upload verification; callbacks too, so a slow receiver holds up neither.
    lanes = {offline.DOWNLOAD_JOB: settings.offline_max_active, callbacks.CALLBACK_JOB: 2}
    runner = make_runner(settings, db, role or default_role(settings), lanes=lanes)
    ctx = Context(settings=settings, db=db, store=store, jobs=runner)
    ctx.signing_key = await tokens.load_signing_key(db)

    async def finish_upload(payload: dict[str, object]) -> None:
        await uploads.finish_job(ctx, payload)

    runner.register(uploads.FINISH_JOB, finish_upload)
    if (role or default_role(settings)) == "all":
        resumed = await uploads.resume_interrupted(ctx)
        if resumed:
            log.info("finishing %d uploads a stop interrupted", resumed)

    async def run_copy_task(payload: dict[str, object]) -> None:
        await copy_tasks.run_job(ctx, payload)

    runner.register(copy_tasks.JOB, run_copy_task)

    async def run_download(payload: dict[str, object]) -> None:
        # The transaction that ends a task marks its job done too (one transaction saved).
        await offline.download_job(ctx, payload, settle_job=settle_current_job)

    async def send_callback(payload: dict[str, object]) -> None:
        await callbacks.deliver_job(ctx, payload)

    runner.register(offline.DOWNLOAD_JOB, run_download)
    runner.register(callbacks.CALLBACK_JOB, send_callback)
    await offline.admit_waiting(ctx)
    return ctx


async def sweep(ctx: Context) -> None:
    """Housekeeping: expire abandoned uploads, remove stale temp files and old finished jobs."""
    await uploads.expire_sessions(ctx)
    await ctx.temp_files.cleanup_temp(older_than=24 * 3600)
    await web_auth.sweep(ctx.db)
    async with ctx.db.write() as session:
        await session.execute(
            delete(Job).where(
                Job.status == JobStatus.DONE, Job.updated_at < utcnow() - timedelta(days=1)
            )
        )


@contextlib.asynccontextmanager
async def running(settings: Settings, role: Role | None = None) -> AsyncIterator[Context]:
    """The services, started, for as long as the block lasts (the server's lifespan)."""
    role = role or default_role(settings)
    ctx = await build_context(settings, role)
    await ctx.jobs.start()

    async def sweeper() -> None:
        while True:
            try:
                await sweep(ctx)
            except Exception:
                log.exception("sweep failed")
            await asyncio.sleep(settings.sweep_interval)

    # Scale-out API processes leave housekeeping to the workers.
    sweeper_task = asyncio.create_task(sweeper() if role != "api" else asyncio.Event().wait())
    traffic_task = asyncio.create_task(
        ctx.part(FileTraffic).run(ctx.db, settings.traffic_flush_interval)
    )
    try:
        yield ctx
    finally:
        sweeper_task.cancel()
        traffic_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper_task
        with contextlib.suppress(asyncio.CancelledError):
            await traffic_task
        await ctx.jobs.stop()
        await offline.close_connections()
        await ctx.part(DailyTraffic).close(ctx.db)
        await ctx.part(FileTraffic).close(ctx.db)
        await ctx.db.dispose()


def create_app(settings: Settings) -> ASGIApp:
    """The ASGI application for ``settings``; the services start with its lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running(settings) as ctx:
            app.state.ctx = ctx
            app.state.limiter = make_limiter(ctx.db, enabled=settings.rate_limit)
            if settings.emulator:
                ctx.part(Emulation).clear(settings.journal_size)
                root = getattr(ctx.store, "root", None)
                if root is not None:
                    emulation_store.remove_leftovers(root)
            yield

    # A Starlette that answers direct links before its middleware and routing.
    app = public.DirectLinksFirst(
        routes=all_routes(emulator=settings.emulator),
        lifespan=lifespan,
        exception_handlers=exception_handlers,
    )
    # Emulator mode: faults and the journal around everything but the control API.
    return Emulated(app) if settings.emulator else app
