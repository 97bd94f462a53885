"""Background work: a job-runner interface and its in-process, persisted implementation.

A job is a row in ``jobs`` (kind + JSON payload), written in the same transaction as the change
that needs it, so work is never promised without being recorded. The in-process runner claims
queued rows, runs the handler registered for their kind, and marks them done or failed. At start
it puts back any job left ``running`` by a crash: with one process, nothing else can be running it.
A handler raises ``Retry`` to be run again later; any other exception fails the job after
``max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from openpan.clock import utcnow
from openpan.db.engine import Database
from openpan.db.models import Job

log = logging.getLogger("openpan.jobs")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Retry(Exception):
    """Raised by a handler: run this job again after ``delay`` seconds."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason)
        self.delay = delay


def enqueue(session: AsyncSession, kind: str, payload: dict[str, Any], delay: float = 0) -> Job:
    """Record a job in the caller's transaction; it runs once that transaction commits."""
    now = utcnow()
    job = Job(
        kind=kind,
        payload=json.dumps(payload),
        status="queued",
        attempts=0,
        run_after=now + timedelta(seconds=delay),
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    return job


@dataclass
class _Running:
    """The job the current task is running for the in-process runner."""

    job_id: int
    settled: bool = False


_running: ContextVar[_Running | None] = ContextVar("openpan_running_job", default=None)


async def settle_current_job(session: AsyncSession) -> None:
    """Mark the job being run as done in the caller's transaction, which then decides its fate:
    the runner writes nothing more for it when the handler returns. A handler whose last step
    is a transaction anyway saves one (downloads end this way, one each). Does nothing outside
    the in-process runner (the distributed engine records its own outcomes)."""
    running = _running.get()
    if running is None:
        return
    await session.execute(
        update(Job)
        .where(Job.id == running.job_id)
        .values(status="done", locked_at=None, last_error=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    running.settled = True


class JobRunner(Protocol):
    """Runs the jobs that ``enqueue`` recorded."""

    def register(self, kind: str, handler: Handler) -> None:
        """Run ``handler(payload)`` for jobs of ``kind``."""
        ...

    def notify(self, *kinds: str) -> None:
        """A job was committed: look for work now rather than at the next poll. ``kinds``: the
        kinds of the jobs committed, if known (only their workers need to look)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InProcessRunner:
    """Workers inside the server process, polling the ``jobs`` table."""

    def __init__(
        self,
        db: Database,
        workers: int = 4,
        poll_interval: float = 1.0,
        max_attempts: int = 5,
        lanes: dict[str, int] | None = None,
    ) -> None:
        """``workers`` run every kind of job except those given a lane of their own:
        ``lanes`` maps a kind to its own number of workers, so long jobs (downloads) never
        hold up short ones (upload verification), and their count caps that kind's concurrency.
        """
        self.db = db
        self.workers = workers
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.lanes = dict(lanes or {})
        self._handlers: dict[str, Handler] = {}
        # Idle workers of each lane (None: the shared workers) wait on a future each. A notify
        # wakes one of them, and a worker that found a job wakes the next, so a burst of jobs
        # is picked up without every idle worker querying the table at every notify. The
        # future's result says whether the waker knows of a job (a notify): then the worker
        # claims at once, without looking first.
        self._idle: dict[str | None, list[asyncio.Future[bool]]] = {None: []}
        self._idle.update({kind: [] for kind in self.lanes})
        # A notify that found no worker idle: the next one about to sleep looks again first.
        self._missed: dict[str | None, bool] = dict.fromkeys(self._idle, False)
        # When the next queued job of each lane is due (seen at the last look).
        self._soonest: dict[str | None, datetime | None] = {}
        # The workers of a lane claim one at a time: claims queue on the write lock anyway, and
        # a look taken after the previous claim ended never sees that claim's job as free.
        self._claiming: dict[str | None, asyncio.Lock] = {
            lane: asyncio.Lock() for lane in self._idle
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def notify(self, *kinds: str) -> None:
        if not kinds:
            lanes: set[str | None] = set(self._idle)
        else:
            lanes = {kind if kind in self.lanes else None for kind in kinds}
        for lane in lanes:
            self._wake_one(lane, known=True)

    def _wake_one(self, lane: str | None, known: bool = False) -> None:
        waiters = self._idle[lane]
        while waiters:
            waiter = waiters.pop()
            if not waiter.done():
                waiter.set_result(known)
                return
        self._missed[lane] = True

    async def start(self) -> None:
        async with self.db.write() as session:
            await session.execute(
                update(Job).where(Job.status == "running").values(status="queued", locked_at=None)
            )
        self._stopping = False
        self._tasks = [asyncio.create_task(self._worker(None, i == 0)) for i in range(self.workers)]
        for kind, count in self.lanes.items():
            self._tasks += [asyncio.create_task(self._worker(kind, i == 0)) for i in range(count)]

    async def stop(self) -> None:
        """Stop taking work; a job cut off mid-run is resumed at the next start."""
        self._stopping = True
        self.notify()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _worker(self, lane: str | None, poller: bool) -> None:
        """One worker of ``lane``. Only the ``poller`` of a lane looks at the table on its own
        (every ``poll_interval``, or sooner when a delayed job is due); the others sleep until
        woken, which costs an idle server nothing."""
        loop = asyncio.get_running_loop()
        idle = self._idle[lane]
        known = False  # woken by a notify: a job was just committed
        while not self._stopping:
            self._missed[lane] = False
            try:
                async with self._claiming[lane]:
                    job = await self._claim(lane, look_first=not known)
            except Exception:  # the database was briefly unavailable; try again shortly
                log.exception("claiming a job failed")
                job = None
            if job is None:
                if self._missed[lane]:
                    continue
                waiter: asyncio.Future[bool] = loop.create_future()
                idle.append(waiter)
                # Sleep until the next poll, or until a job waiting out a short delay is due.
                timeout = self.poll_interval if poller else 60 * self.poll_interval
                soonest = self._soonest.get(lane)
                if poller and soonest is not None:
                    timeout = min(timeout, max(0.01, (soonest - utcnow()).total_seconds()))
                known = False
                try:
                    with contextlib.suppress(TimeoutError):
                        known = await asyncio.wait_for(waiter, timeout)
                finally:
                    if waiter in idle:
                        idle.remove(waiter)
                continue
            known = False
            self._wake_one(lane)  # there may be more: another idle worker looks
            await self._run(job)

    async def _claim(self, lane: str | None, look_first: bool = True) -> Job | None:
        if lane is not None:
            kinds = [lane] if lane in self._handlers else []
        else:
            kinds = [kind for kind in self._handlers if kind not in self.lanes]
        if not kinds:
            return None
        if look_first:
            # Look before taking the write lock: idle workers poll, and must not queue up
            # behind (or in front of) the writes of requests when there is nothing to claim.
            async with self.db.read() as session:
                soonest = await session.scalar(
                    select(func.min(Job.run_after)).where(
                        Job.status == "queued", Job.kind.in_(kinds)
                    )
                )
            self._soonest[lane] = soonest
            if soonest is None or soonest > utcnow():
                return None
        # One statement: the oldest due job becomes ours, or none does. The status condition
        # (and, on PostgreSQL, SKIP LOCKED) keeps two workers from taking the same one.
        oldest_due = (
            select(Job.id)
            .where(Job.status == "queued", Job.run_after <= utcnow(), Job.kind.in_(kinds))
            .order_by(Job.run_after, Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        async with self.db.write() as session:
            claimed = await session.scalars(
                update(Job)
                .where(Job.id == oldest_due, Job.status == "queued")
                .values(status="running", locked_at=utcnow(), attempts=Job.attempts + 1)
                .returning(Job)
                .execution_options(synchronize_session=False)
            )
            return claimed.one_or_none()

    async def _run(self, job: Job) -> None:
        handler = self._handlers[job.kind]
        status, delay, error = "done", 0.0, None
        running = _Running(job.id)
        token = _running.set(running)
        try:
            await handler(json.loads(job.payload))
            if running.settled:
                return
        except Retry as retry:
            status, delay, error = "queued", retry.delay, str(retry) or None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            error = f"{type(exc).__name__}: {exc}"
            if job.attempts < self.max_attempts:
                status, delay = "queued", min(60.0, 2.0**job.attempts)
            else:
                status = "failed"
        finally:
            _running.reset(token)
        async with self.db.write() as session:
            await session.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(
                    status=status,
                    run_after=utcnow() + timedelta(seconds=delay),
                    locked_at=None,
                    last_error=error,
                    updated_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            )
        if status == "queued":
            self.notify(job.kind)
