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

from sqlalchemy import bindparam, event, func, insert, select, update

from openpan.clock import utcnow
from openpan.db.engine import Database
from openpan.db.models import Job, table_of
from openpan.db.session import Session, hot
from openpan.db.statuses import JobStatus

log = logging.getLogger("openpan.jobs")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until each has stopped."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Retry(Exception):
    """Raised by a handler: run this job again after ``delay`` seconds."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason)
        self.delay = delay


# Statements every job runs, written once and in Core: the ORM's own cost per statement was
# more than the statement's (see ``Database.rows``).
_jobs = table_of(Job)
_INSERT = hot(insert(_jobs))
_INSERT_TAKEN = hot(insert(_jobs).returning(_jobs.c.id))
_SETTLE = hot(
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


async def enqueue(session: Session, kind: str, payload: dict[str, Any], delay: float = 0) -> None:
    """Record a job in the caller's transaction; it runs once that transaction commits.

    Queued by a job of the same kind that an in-process worker is running (a download that
    ended admits the next), the first such job is that worker's next one: recorded as running
    already and handed over when the transaction commits, so nobody has to claim it."""
    now = utcnow()
    text = json.dumps(payload)
    running = _running.get()
    take = (
        running is not None
        and running.kind == kind
        and not delay
        and not running.taking
        # The handler's own task (not one it started, which may commit after it returned),
        # outside a savepoint (which may roll back while the transaction commits).
        and asyncio.current_task() is running.task
        and not session.in_nested_transaction()
    )
    values = {
        "kind": kind,
        "payload": text,
        "status": JobStatus.RUNNING if take else JobStatus.QUEUED,
        "attempts": 1 if take else 0,
        "run_after": now + timedelta(seconds=delay),
        "locked_at": now if take else None,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
    }
    if not take:
        if running is not None:
            running.queued_more = True
        await session.execute(_INSERT, values)
        return
    assert running is not None
    running.taking = True
    taken = _Claimed(await session.scalar(_INSERT_TAKEN, values), kind, text, 1)
    _on_commit(session, lambda: setattr(running, "next", taken))


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
    kind: str
    lane: str | None
    task: asyncio.Task[Any] | None
    # Marked done by the handler's own transaction (``settle_current_job``), once committed.
    settled: bool = False
    # A job of the same kind this one queued and took for its worker (see ``enqueue``): being
    # recorded, and recorded (``next``, once its transaction committed).
    taking: bool = False
    next: _Claimed | None = None
    # It queued other jobs too, which idle workers must be woken for.
    queued_more: bool = False
    # A notify for its own lane came while it ran: its worker claims when the job returns.
    claim_next: bool = False


_running: ContextVar[_Running | None] = ContextVar("openpan_running_job", default=None)


async def settle_current_job(session: Session) -> None:
    """Mark the job being run as done in the caller's transaction, which then decides its fate:
    the runner writes nothing more for it when the handler returns. A handler whose last step
    is a transaction anyway saves one (downloads end this way, one each). Does nothing outside
    the in-process runner (the distributed engine records its own outcomes)."""
    running = _running.get()
    if running is None:
        return
    await _settle(session, running.job_id, JobStatus.DONE, 0.0, None)
    _on_commit(session, lambda: setattr(running, "settled", True))


def _on_commit(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` when the session's transaction commits; never if it rolls back."""
    event.listen(session.sync_session, "after_commit", lambda _session: action(), once=True)


async def _settle(
    session: Session, job_id: int, status: str, delay: float, error: str | None
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
        _jobs.c.status == JobStatus.QUEUED,
        _jobs.c.run_after <= bindparam("now"),
        _jobs.c.kind.in_(bindparam("kinds", expanding=True)),
    )
    .order_by(_jobs.c.run_after, _jobs.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
_SOONEST = select(func.min(_jobs.c.run_after)).where(
    _jobs.c.status == JobStatus.QUEUED, _jobs.c.kind.in_(bindparam("kinds", expanding=True))
)
_CLAIM = (
    update(_jobs)
    .where(_jobs.c.id == _oldest_due, _jobs.c.status == JobStatus.QUEUED)
    .values(status=JobStatus.RUNNING, locked_at=bindparam("now"), attempts=_jobs.c.attempts + 1)
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
            if running is not None and running.lane == lane and set(kinds) == {running.kind}:
                # Called by a job of the one kind notified, which a worker of this lane is
                # running: what it queued is that worker's next job (``enqueue``), or the worker
                # claims it when the job returns, rather than an idle worker racing it for the
                # same row.
                if running.next is not None and not running.queued_more:
                    continue
                if running.next is None and not running.claim_next:
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
                update(Job)
                .where(Job.status == JobStatus.RUNNING)
                .values(status=JobStatus.QUEUED, locked_at=None)
            )
        self._stopping = False
        self._tasks = [asyncio.create_task(self._worker(None)) for _ in range(self.workers)]
        for kind, count in self.lanes.items():
            self._tasks += [asyncio.create_task(self._worker(kind)) for _ in range(count)]
        self._tasks += [asyncio.create_task(self._poll(lane)) for lane in self._idle]

    async def stop(self) -> None:
        """Stop taking work; a job cut off mid-run is resumed at the next start."""
        self._stopping = True
        self.notify()
        await cancel_all(self._tasks)
        self._tasks = []

    async def _worker(self, lane: str | None) -> None:
        """One worker of ``lane``: claims and runs jobs, and sleeps until woken when there are
        none (by a notify, by a worker that found work, or by the lane's ``_poll``)."""
        known = False  # woken by a notify: a job was just committed
        job: _Claimed | None = None  # handed over by the job run last
        while not self._stopping:
            if job is None:
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
                    known = await self._sleep(lane)
                    continue
                self._wake_one(lane)  # there may be more: another idle worker looks
            job, known = await self._run(job, lane)

    async def _sleep(self, lane: str | None) -> bool:
        """Wait until woken; True if by a notify (a job was just committed)."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        idle = self._idle[lane]
        idle.append(waiter)
        try:
            return await waiter
        finally:
            if waiter in idle:
                idle.remove(waiter)

    async def _poll(self, lane: str | None) -> None:
        """Wake an idle worker of ``lane`` to look at the table every ``poll_interval``, or
        sooner when a job waiting out a short delay is due: how jobs queued by other processes,
        and delayed ones, are found. A timer of its own, not a worker's duty: a worker running
        jobs handed over one after another (``enqueue``) would never get round to it."""
        while not self._stopping:
            timeout = self.poll_interval
            soonest = self._soonest.get(lane)
            if soonest is not None and soonest > utcnow():
                timeout = min(timeout, (soonest - utcnow()).total_seconds())
            # A time already past was due at the last look, whose worker claimed it: waking
            # again at once would only spin while every worker is busy.
            await asyncio.sleep(timeout)
            self._wake_one(lane)

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

    async def _run(self, job: _Claimed, lane: str | None) -> tuple[_Claimed | None, bool]:
        """Run the job's handler and record how it went. Returns the job it handed over to this
        worker, if any, and whether it queued more work of this lane (which the worker then
        claims without looking first)."""
        handler = self._handlers[job.kind]
        status, delay, error = JobStatus.DONE, 0.0, None
        running = _Running(job.id, job.kind, lane, asyncio.current_task())
        token = _running.set(running)
        try:
            await handler(json.loads(job.payload))
            if running.settled:
                return running.next, running.claim_next
        except Retry as retry:
            status, delay, error = JobStatus.QUEUED, retry.delay, str(retry) or None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            error = f"{type(exc).__name__}: {exc}"
            if job.attempts < self.max_attempts:
                status, delay = JobStatus.QUEUED, min(60.0, 2.0**job.attempts)
            else:
                status = JobStatus.FAILED
        finally:
            _running.reset(token)
        try:
            async with self.db.write() as session:
                await _settle(session, job.id, status, delay, error)
        except Exception:  # left running; put back at the next start, as after a crash
            log.exception("recording the outcome of job %s failed", job.id)
            return running.next, running.claim_next
        if status == JobStatus.QUEUED:
            self.notify(job.kind)
        return running.next, running.claim_next
