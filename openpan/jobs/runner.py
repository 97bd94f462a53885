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

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from openpan.clock import utcnow
from openpan.db.engine import Database
from openpan.db.models import Job, table_of

log = logging.getLogger("openpan.jobs")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Retry(Exception):
    """Raised by a handler: run this job again after ``delay`` seconds."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason)
        self.delay = delay


# Statements every job runs, written once and in Core: the ORM's own cost per statement was
# more than the statement's (see ``Database.rows``).
_jobs = table_of(Job)
_INSERT = insert(_jobs)
_SETTLE = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("job_id"))
    .values(
        status=bindparam("status"),
        run_after=bindparam("run_after"),
        locked_at=None,
        last_error=bindparam("last_error"),
        updated_at=bindparam("now"),
    )
)


async def enqueue(
    session: AsyncSession, kind: str, payload: dict[str, Any], delay: float = 0
) -> None:
    """Record a job in the caller's transaction; it runs once that transaction commits."""
    now = utcnow()
    await session.execute(
        _INSERT,
        {
            "kind": kind,
            "payload": json.dumps(payload),
            "status": "queued",
            "attempts": 0,
            "run_after": now + timedelta(seconds=delay),
            "locked_at": None,
            "last_error": None,
            "created_at": now,
            "updated_at": now,
        },
    )


@dataclass(frozen=True)
class _Claimed:
    """What a worker needs of the job it claimed."""

    id: int
    kind: str
    payload: str
    attempts: int


@dataclass
class _Running:
    """The job the current task is running for the in-process runner."""

    job_id: int
    lane: str | None
    settled: bool = False
    # The job queued more of its own lane's work (a download that ended admits the next): its
    # worker claims that itself when the job returns.
    claim_next: bool = False


_running: ContextVar[_Running | None] = ContextVar("openpan_running_job", default=None)


async def settle_current_job(session: AsyncSession) -> None:
    """Mark the job being run as done in the caller's transaction, which then decides its fate:
    the runner writes nothing more for it when the handler returns. A handler whose last step
    is a transaction anyway saves one (downloads end this way, one each). Does nothing outside
    the in-process runner (the distributed engine records its own outcomes)."""
    running = _running.get()
    if running is None:
        return
    await _settle(session, running.job_id, "done", 0.0, None)
    running.settled = True


async def _settle(
    session: AsyncSession, job_id: int, status: str, delay: float, error: str | None
) -> None:
    now = utcnow()
    await session.execute(
        _SETTLE,
        {
            "job_id": job_id,
            "status": status,
            "run_after": now + timedelta(seconds=delay),
            "last_error": error,
            "now": now,
        },
    )


_oldest_due = (
    select(_jobs.c.id)
    .where(
        _jobs.c.status == "queued",
        _jobs.c.run_after <= bindparam("now"),
        _jobs.c.kind.in_(bindparam("kinds", expanding=True)),
    )
    .order_by(_jobs.c.run_after, _jobs.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
_SOONEST = select(func.min(_jobs.c.run_after)).where(
    _jobs.c.status == "queued", _jobs.c.kind.in_(bindparam("kinds", expanding=True))
)
_CLAIM = (
    update(_jobs)
    .where(_jobs.c.id == _oldest_due, _jobs.c.status == "queued")
    .values(status="running", locked_at=bindparam("now"), attempts=_jobs.c.attempts + 1)
    .returning(_jobs.c.id, _jobs.c.kind, _jobs.c.payload, _jobs.c.attempts)
)


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
        running = _running.get()
        for lane in lanes:
            if running is not None and running.lane == lane and not running.claim_next:
                # Rather than wake an idle worker that would race this one for the new row
                # once this job returns, this one takes it (see ``_worker``).
                running.claim_next = True
                continue
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
            self._wake_one(lane)  # there may be more: another idle worker looks
            known = await self._run(job, lane)

    async def _claim(self, lane: str | None, look_first: bool = True) -> _Claimed | None:
        if lane is not None:
            kinds = [lane] if lane in self._handlers else []
        else:
            kinds = [kind for kind in self._handlers if kind not in self.lanes]
        if not kinds:
            return None
        if look_first:
            # Look before taking the write lock: idle workers poll, and must not queue up
            # behind (or in front of) the writes of requests when there is nothing to claim.
            async with self.db.rows() as connection:
                soonest = await connection.scalar(_SOONEST, {"kinds": kinds})
            self._soonest[lane] = soonest
            if soonest is None or soonest > utcnow():
                return None
        # One statement: the oldest due job becomes ours, or none does. The status condition
        # (and, on PostgreSQL, SKIP LOCKED) keeps two workers from taking the same one.
        async with self.db.write() as session:
            row = (await session.execute(_CLAIM, {"kinds": kinds, "now": utcnow()})).first()
        return None if row is None else _Claimed(*row)

    async def _run(self, job: _Claimed, lane: str | None) -> bool:
        """Run the job's handler and record how it went. True if it queued more work of its own
        lane, which the caller then claims without looking first."""
        handler = self._handlers[job.kind]
        status, delay, error = "done", 0.0, None
        running = _Running(job.id, lane)
        token = _running.set(running)
        try:
            await handler(json.loads(job.payload))
            if running.settled:
                return running.claim_next
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
            await _settle(session, job.id, status, delay, error)
        if status == "queued":
            self.notify(job.kind)
        return running.claim_next
