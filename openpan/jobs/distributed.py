"""Scale-out background work: the ``jobs`` table as a transactional outbox, procrastinate as the
engine that distributes it to worker processes over PostgreSQL.

Why this shape:

* Services record work with ``enqueue`` in the same transaction as the change that needs it, in
  every mode. A job is therefore never promised without being recorded, nor recorded for a
  change that rolled back.
* The **relay** (in API and worker processes) hands due outbox rows to procrastinate and marks
  them ``relayed``. Rows are taken ``FOR UPDATE SKIP LOCKED`` so relays in several processes
  share the work; the mark is committed only after procrastinate accepted the job, so a crash
  in between leaves the row ``queued`` and it is handed over again. A repeated hand-over is
  harmless: the engine job carries a ``queueing_lock`` (one waiting copy at most) and a
  ``lock`` (never two running at once), and the task re-checks the row before running it.
* **procrastinate** owns delivery: workers fetch jobs with ``SKIP LOCKED``, send heartbeats,
  and every worker periodically retries jobs whose worker's heartbeat stopped (``kill -9``,
  a lost machine), so another worker resumes them.
* The **task** claims the outbox row (``attempts + 1``, a fresh ``locked_at`` as fencing
  token), runs the handler registered for its kind, and records the outcome only if it still
  holds the claim. ``Retry`` and failures put the row back in the outbox with a delay; the
  relay hands it over again when it is due.
* **Graceful shutdown** of a worker hands running jobs back: handlers get ``job_grace``
  seconds to finish, the rest are cancelled and their rows return to the outbox at once.

Handlers are idempotent (the in-process runner already re-runs them after a crash), which is
what makes at-least-once delivery safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from datetime import datetime, timedelta

import procrastinate
import psycopg
from procrastinate import exceptions as pq_exceptions
from procrastinate.schema import SchemaManager
from sqlalchemy import select, update

from openpan.clock import utcnow
from openpan.db.engine import Database
from openpan.db.models import Job
from openpan.db.statuses import JobStatus
from openpan.jobs.runner import Handler, Retry, cancel_all

log = logging.getLogger("openpan.jobs")

TASK_NAME = "openpan.run_job"
# pg_advisory_lock key that serialises creating procrastinate's schema ("openpan1").
SCHEMA_LOCK = 0x6F70656E70616E31
RELAY_BATCH = 100
DEFAULT_QUEUE = "openpan"


def broker_conninfo(queue_url: str) -> str:
    """The libpq connection string for ``OPENPAN_QUEUE_URL`` (``postgresql://...``)."""
    scheme, sep, rest = queue_url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError(
            f"OPENPAN_QUEUE_URL={queue_url!r}: the job engine (procrastinate) needs a "
            "postgresql:// URL"
        )
    return f"postgresql://{rest}"


async def ensure_schema(conninfo: str) -> None:
    """Create procrastinate's tables unless they exist; safe when many processes start at once."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            found = await (
                await conn.execute("SELECT to_regclass('procrastinate_jobs')")
            ).fetchone()
            if found is None or found[0] is None:
                async with conn.transaction():
                    await conn.execute(SchemaManager.get_schema())
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


class DistributedRunner:
    """The ``JobRunner`` of scale-out mode.

    ``run_jobs=False`` (API processes): relay only. ``run_jobs=True`` (``openpan worker``):
    relay, a procrastinate worker running the registered handlers, and stalled-job recovery.
    """

    def __init__(
        self,
        db: Database,
        queue_url: str,
        *,
        run_jobs: bool,
        workers: int = 4,
        lanes: dict[str, int] | None = None,
        heartbeat: float = 10.0,
        stalled_after: float = 30.0,
        job_grace: float = 10.0,
        relay_interval: float = 1.0,
        max_attempts: int = 5,
    ) -> None:
        self.db = db
        self.conninfo = broker_conninfo(queue_url)
        self.run_jobs = run_jobs
        self.workers = workers
        # Kinds with a lane get a procrastinate queue and workers of their own, so long jobs
        # (downloads) never hold up short ones (upload verification).
        self.lanes = dict(lanes or {})
        self.heartbeat = heartbeat
        self.stalled_after = stalled_after
        self.job_grace = job_grace
        self.relay_interval = relay_interval
        self.max_attempts = max_attempts
        self._handlers: dict[str, Handler] = {}
        self._wake = asyncio.Event()
        self._handing_back = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._worker_tasks: list[asyncio.Task[None]] = []
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=self.conninfo,
                min_size=1,
                max_size=(workers + sum(self.lanes.values()) + 4) if run_jobs else 4,
            )
        )
        # Handlers' own failures are recorded in the outbox; what reaches procrastinate is the
        # database failing under the claim or the outcome: then the task runs again.
        self._task = self.app.task(
            name=TASK_NAME,
            pass_context=False,
            retry=procrastinate.RetryStrategy(max_attempts=20, wait=5),
        )(self._run_job)

    # JobRunner ---------------------------------------------------------------------------

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def notify(self, *kinds: str) -> None:
        self._wake.set()

    async def start(self) -> None:
        await ensure_schema(self.conninfo)
        await self.app.open_async()
        self._handing_back.clear()
        self._tasks = [asyncio.create_task(self._relay_loop(), name="outbox relay")]
        if self.run_jobs:
            self._tasks.append(asyncio.create_task(self._recover_loop(), name="stalled jobs"))
            pools = [(DEFAULT_QUEUE, self.workers), *self.lanes.items()]
            self._worker_tasks = [
                asyncio.create_task(self._work(queue, count), name=f"job worker {queue}")
                for queue, count in pools
            ]

    async def _work(self, queue: str, concurrency: int) -> None:
        """Run procrastinate's worker for ``queue`` until cancelled (a graceful stop). It stops
        by itself when its connection to the broker breaks: then it is started again."""
        while True:
            try:
                await self.app.run_worker_async(
                    name=f"{self.name}/{queue}",
                    queues=[queue],
                    concurrency=concurrency,
                    install_signal_handlers=False,
                    update_heartbeat_interval=self.heartbeat,
                    stalled_worker_timeout=self.stalled_after,
                    fetch_job_polling_interval=min(5.0, self.heartbeat),
                    delete_jobs="successful",
                )
                log.warning("the job worker for %s stopped; starting it again", queue)
            except Exception:
                log.exception("the job worker for %s failed; starting it again", queue)
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Stop taking work; jobs still running after ``job_grace`` seconds are handed back."""
        if self._worker_tasks:
            workers, self._worker_tasks = set(self._worker_tasks), []
            # Cancelling procrastinate's workers stops them fetching; they then wait for the
            # jobs they run, which get ``job_grace`` seconds before they are handed back.
            for worker in workers:
                worker.cancel()
            _, pending = await asyncio.wait(workers, timeout=self.job_grace)
            if pending:
                self._handing_back.set()
                await asyncio.wait(pending)
        await cancel_all(self._tasks)
        self._tasks = []
        await self.app.close_async()

    # Relay -------------------------------------------------------------------------------

    async def relay_once(self) -> int:
        """Hand every due outbox row to the engine; returns how many were handed over."""
        async with self.db.write() as session:
            rows = (
                await session.execute(
                    select(Job.id, Job.kind)
                    .where(Job.status == JobStatus.QUEUED, Job.run_after <= utcnow())
                    .order_by(Job.run_after, Job.id)
                    .limit(RELAY_BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            ids = [row.id for row in rows]
            for row in rows:
                lock = f"openpan-job-{row.id}"
                queue = row.kind if row.kind in self.lanes else DEFAULT_QUEUE
                # AlreadyEnqueued: a copy is already waiting, and that one will run it.
                with contextlib.suppress(pq_exceptions.AlreadyEnqueued):
                    await self._task.configure(
                        lock=lock, queueing_lock=lock, queue=queue
                    ).defer_async(job_id=row.id)
            if ids:
                await session.execute(
                    update(Job)
                    .where(Job.id.in_(ids), Job.status == JobStatus.QUEUED)
                    .values(status=JobStatus.RELAYED, updated_at=utcnow())
                )
        return len(ids)

    async def _relay_loop(self) -> None:
        while True:
            try:
                handed = await self.relay_once()
            except Exception:  # the database or broker was briefly unavailable
                log.exception("relaying jobs failed")
                handed = 0
            if handed >= RELAY_BATCH:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.relay_interval)

    # Stalled workers ---------------------------------------------------------------------

    async def recover_stalled(self) -> int:
        """Put back the jobs of workers whose heartbeat stopped; returns how many."""
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after)
        count = 0
        for job in stalled:
            try:
                await manager.retry_job(job)
                count += 1
                log.warning("job %s of a stalled worker put back in the queue", job.id)
            except Exception:  # another worker got there first
                continue
        return count

    async def _recover_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.recover_stalled()
            except Exception:
                log.exception("recovering stalled jobs failed")

    # The task ----------------------------------------------------------------------------

    async def _run_job(self, job_id: int) -> None:
        claimed = await self._claim(job_id)
        if claimed is None:
            return
        job, token = claimed
        handler = self._handlers.get(job.kind)
        if handler is None:
            await self._finish(
                job, token, JobStatus.FAILED, 0, f"no handler for job kind {job.kind!r}"
            )
            return
        outcome = await self._execute(job, handler)
        await self._finish(job, token, *outcome)
        if outcome[0] == JobStatus.QUEUED:
            self._wake.set()

    async def _execute(self, job: Job, handler: Handler) -> tuple[str, float, str | None]:
        """Run ``handler``; (status, delay, error) for the outbox row."""
        run = asyncio.ensure_future(handler(json.loads(job.payload)))
        back = asyncio.ensure_future(self._handing_back.wait())
        try:
            await asyncio.wait({run, back}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            back.cancel()
        if not run.done():
            run.cancel()
            with contextlib.suppress(BaseException):
                await run
            log.info("job %s (%s) handed back at shutdown", job.id, job.kind)
            return JobStatus.QUEUED, 0.0, "handed back at worker shutdown"
        try:
            run.result()
        except Retry as retry:
            return JobStatus.QUEUED, retry.delay, str(retry) or None
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            error = f"{type(exc).__name__}: {exc}"
            if job.attempts < self.max_attempts:
                return JobStatus.QUEUED, min(60.0, 2.0**job.attempts), error
            return JobStatus.FAILED, 0.0, error
        return JobStatus.DONE, 0.0, None

    async def _claim(self, job_id: int) -> tuple[Job, datetime] | None:
        now = utcnow()
        async with self.db.write() as session:
            job = await session.get(Job, job_id, with_for_update=True)
            if job is None or job.status in (JobStatus.DONE, JobStatus.FAILED):
                return None
            if job.status == JobStatus.QUEUED and job.run_after > now:
                return None  # waiting out a retry delay; the relay hands it over when due
            job.status = JobStatus.RUNNING
            job.attempts += 1
            job.locked_at = now
            job.updated_at = now
        return job, now

    async def _finish(
        self, job: Job, token: datetime, status: str, delay: float, error: str | None
    ) -> None:
        async with self.db.write() as session:
            # Only while this run still holds the claim: a run that the stalled-job recovery
            # gave to another worker must not overwrite that worker's outcome.
            await session.execute(
                update(Job)
                .where(Job.id == job.id, Job.status == JobStatus.RUNNING, Job.locked_at == token)
                .values(
                    status=status,
                    run_after=utcnow() + timedelta(seconds=delay),
                    locked_at=None,
                    last_error=error,
                    updated_at=utcnow(),
                )
            )
