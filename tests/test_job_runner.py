"""The in-process job runner, on a real database (SQLite, or PostgreSQL in that tier).

A job that queues more work of its own kind hands the first such job to its own worker, which
runs it next without claiming it; the hand-over counts only once the transaction that recorded
it commits, and jobs it queued besides wake idle workers. The poll interval is set long here,
so a job that nobody was woken for would not run within these tests' deadlines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pgdb
from sqlalchemy import event, select

from openpan.db import migrate
from openpan.db.engine import Database
from openpan.db.models import Job
from openpan.jobs.runner import InProcessRunner, Retry, enqueue, settle_current_job

KIND = "test.chain"
DEADLINE = 10.0


async def _with_runner(
    tmp_path: Path,
    handler: Callable[[Database, InProcessRunner, dict[str, Any]], Awaitable[None]],
    first: dict[str, Any],
    done: asyncio.Event,
    claims: list[str] | None = None,
    poll_interval: float = 60,
    workers: int = 3,
) -> list[Any]:
    """Run ``handler`` for ``first`` and whatever it queues until ``done``; the job rows.
    ``claims`` collects the statements by which workers claimed jobs."""
    db = Database(pgdb.tier_database(tmp_path))
    await migrate.upgrade(db.engine)

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _claimed(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        claiming = statement.startswith("UPDATE jobs SET status") and "attempts" in statement
        if claims is not None and claiming:
            claims.append(statement)

    runner = InProcessRunner(db, workers=1, poll_interval=poll_interval, lanes={KIND: workers})

    async def run(payload: dict[str, Any]) -> None:
        await handler(db, runner, payload)

    runner.register(KIND, run)
    # Queued before the workers start: each looks once at start, one at a time (a look and its
    # claim hold the lane's claim lock), so exactly one of them claims it. Queued after, with
    # a notify, a worker still in its first look could claim it while the notify sent another
    # to claim too.
    async with db.write() as session:
        await enqueue(session, KIND, first)
    await runner.start()
    try:
        await asyncio.wait_for(done.wait(), DEADLINE)
        await asyncio.sleep(0.2)  # let the last job's outcome be recorded
    finally:
        await runner.stop()
    async with db.read() as session:
        rows = (await session.execute(select(Job).order_by(Job.id))).scalars().all()
    await db.dispose()
    return list(rows)


def test_a_job_queued_by_a_job_of_its_kind_runs_next_without_being_claimed(
    tmp_path: Path,
) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(db: Database, runner: InProcessRunner, payload: dict[str, Any]) -> None:
        step = int(payload["step"])
        seen.append(step)
        if step == 5:
            done.set()
            return
        async with db.write() as session:
            await enqueue(session, KIND, {"step": step + 1})
            await settle_current_job(session)

    claims: list[str] = []
    rows = asyncio.run(_with_runner(tmp_path, handler, {"step": 1}, done, claims))
    assert seen == [1, 2, 3, 4, 5]
    assert len(claims) == 1  # the first job only: each later one was handed over
    assert [json.loads(row.payload)["step"] for row in rows] == [1, 2, 3, 4, 5]
    assert all(row.status == "done" for row in rows)
    # Each job ran once: the one handed over was recorded as running (one attempt) already,
    # and no worker claimed it a second time.
    assert all(row.attempts == 1 for row in rows)


def test_a_hand_over_in_a_transaction_that_rolls_back_runs_nothing(tmp_path: Path) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(db: Database, runner: InProcessRunner, payload: dict[str, Any]) -> None:
        step = int(payload["step"])
        seen.append(step)
        if step == 1:
            try:
                async with db.write() as session:
                    await enqueue(session, KIND, {"step": 99})  # never committed
                    raise RuntimeError("rolled back")
            except RuntimeError:
                pass
            async with db.write() as session:
                await enqueue(session, KIND, {"step": 2})
            return
        done.set()

    rows = asyncio.run(_with_runner(tmp_path, handler, {"step": 1}, done))
    assert seen == [1, 2]
    assert [json.loads(row.payload)["step"] for row in rows] == [1, 2]
    assert all(row.status == "done" for row in rows)


def test_jobs_queued_besides_the_one_handed_over_wake_idle_workers(tmp_path: Path) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(db: Database, runner: InProcessRunner, payload: dict[str, Any]) -> None:
        step = int(payload["step"])
        seen.append(step)
        if step == 0:
            async with db.write() as session:
                for number in (1, 2, 3):
                    await enqueue(session, KIND, {"step": number})
            # What the job's end does in the server: wake the workers of what it queued.
            runner.notify(KIND)
        if sorted(seen) == [0, 1, 2, 3]:
            done.set()

    rows = asyncio.run(_with_runner(tmp_path, handler, {"step": 0}, done))
    assert sorted(seen) == [0, 1, 2, 3]
    assert all(row.status == "done" for row in rows)
    assert all(row.attempts == 1 for row in rows)


def test_a_delayed_retry_runs_while_another_worker_runs_a_chain_of_hand_overs(
    tmp_path: Path,
) -> None:
    """The lane's poll is a timer of its own: a worker busy with jobs handed over one after
    another does not keep an idle worker from picking up a retry that has come due."""
    events: list[str] = []
    done = asyncio.Event()
    chain = 30

    async def handler(db: Database, runner: InProcessRunner, payload: dict[str, Any]) -> None:
        if "retry" in payload:
            events.append(f"retry {payload['retry']}")
            if payload["retry"] == 0 and events.count("retry 0") == 1:
                raise Retry(0.3, "once more")
            return
        step = int(payload["step"])
        events.append(f"step {step}")
        if step == 1:
            async with db.write() as session:
                await enqueue(session, KIND, {"retry": 0})
            runner.notify(KIND)
        await asyncio.sleep(0.1)
        if step == chain:
            done.set()
            return
        async with db.write() as session:
            await enqueue(session, KIND, {"step": step + 1})
            await settle_current_job(session)

    asyncio.run(_with_runner(tmp_path, handler, {"step": 1}, done, poll_interval=0.2, workers=2))
    assert events.count("retry 0") == 2, events
    # Run again long before the chain (3 s of work on the other worker) came to its end.
    assert events.index("retry 0", events.index("retry 0") + 1) < events.index(f"step {chain}")


def test_a_job_queued_in_a_savepoint_that_rolls_back_is_not_handed_over(tmp_path: Path) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(db: Database, runner: InProcessRunner, payload: dict[str, Any]) -> None:
        step = int(payload["step"])
        seen.append(step)
        if step != 1:
            done.set()
            return
        async with db.write() as session:
            try:
                async with session.begin_nested():
                    await enqueue(session, KIND, {"step": 99})
                    raise RuntimeError("the savepoint rolls back, the transaction goes on")
            except RuntimeError:
                pass
            await enqueue(session, KIND, {"step": 2})
        runner.notify(KIND)

    rows = asyncio.run(_with_runner(tmp_path, handler, {"step": 1}, done))
    assert seen == [1, 2]
    assert [json.loads(row.payload)["step"] for row in rows] == [1, 2]
