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
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
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


class JobRunner(Protocol):
    """Runs the jobs that ``enqueue`` recorded."""

    def register(self, kind: str, handler: Handler) -> None:
        """Run ``handler(payload)`` for jobs of ``kind``."""
        ...

    def notify(self) -> None:
        """A job was committed: look for work now rather than at the next poll."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InProcessRunner:
    """Workers inside the server process, polling the ``jobs`` table."""

    def __init__(
        self, db: Database, workers: int = 4, poll_interval: float = 1.0, max_attempts: int = 5
    ) -> None:
        self.db = db
        self.workers = workers
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self._handlers: dict[str, Handler] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def notify(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        async with self.db.write() as session:
            await session.execute(
                update(Job).where(Job.status == "running").values(status="queued", locked_at=None)
            )
        self._stopping = False
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self.workers)]

    async def stop(self) -> None:
        """Stop taking work; a job cut off mid-run is resumed at the next start."""
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _worker(self, number: int) -> None:
        while not self._stopping:
            try:
                job = await self._claim()
            except Exception:  # the database was briefly unavailable; try again shortly
                log.exception("claiming a job failed")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                continue
            await self._run(job)

    async def _claim(self) -> Job | None:
        kinds = list(self._handlers)
        if not kinds:
            return None
        async with self.db.write() as session:
            candidates = (
                await session.scalars(
                    select(Job)
                    .where(Job.status == "queued", Job.run_after <= utcnow(), Job.kind.in_(kinds))
                    .order_by(Job.run_after, Job.id)
                    .limit(5)
                )
            ).all()
            for job in candidates:
                claimed = await session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.status == "queued")
                    .values(status="running", locked_at=utcnow(), attempts=Job.attempts + 1)
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    await session.refresh(job)
                    return job
        return None

    async def _run(self, job: Job) -> None:
        handler = self._handlers[job.kind]
        status, delay, error = "done", 0.0, None
        try:
            await handler(json.loads(job.payload))
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
            )
        if status == "queued":
            self._wake.set()
