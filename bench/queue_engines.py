"""Job engines for scale-out mode, measured side by side: procrastinate on PostgreSQL and arq on
Redis (the two most plausible async-native choices for openpan).

For each engine, one worker process runs no-op jobs with 4 at once:

* ``enqueue/s``: jobs deferred one by one from one client,
* ``drain/s``: jobs run per second by the worker once N are waiting,
* ``pickup ms``: from deferring one job into an idle queue until the worker starts it
  (median and 95th percentile over 30 jobs).

Run: python bench/queue_engines.py [--jobs 500]
Needs PostgreSQL on 127.0.0.1:5432 (database ``test``, trust auth) and Redis on 127.0.0.1:6379;
arq is a benchmark-only dependency: pip install -e '.[bench]'. Every step has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from typing import Any

PG_ADMIN = os.environ.get("OPENPAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/15")
DEADLINE = 120.0
# Workers start fresh (no event loop inherited from this process).
MP = multiprocessing.get_context("spawn")


# procrastinate ---------------------------------------------------------------------------------


def _pq_app(conninfo: str, marks: Any) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(name="noop")
    async def noop(n: int, sent: float) -> None:
        marks.put((n, time.time() - sent))

    return app


def _pq_worker(conninfo: str, marks: Any) -> None:
    app = _pq_app(conninfo, marks)

    async def run() -> None:
        async with app.open_async():
            await app.run_worker_async(concurrency=4, install_signal_handlers=True)

    asyncio.run(run())


async def bench_procrastinate(jobs: int) -> dict[str, float]:
    import psycopg
    from procrastinate.schema import SchemaManager

    name = f"bench_q_{uuid.uuid4().hex[:8]}"
    base = PG_ADMIN.rpartition("/")[0]
    async with await psycopg.AsyncConnection.connect(PG_ADMIN, autocommit=True) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    conninfo = f"{base}/{name}"
    try:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(SchemaManager.get_schema())
        marks: Any = MP.Queue()
        app = _pq_app(conninfo, marks)
        async with app.open_async():
            task = app.tasks["noop"]
            return await _measure(
                jobs,
                lambda n: task.defer_async(n=n, sent=time.time()),
                MP.Process(target=_pq_worker, args=(conninfo, marks)),
                marks,
            )
    finally:
        async with await psycopg.AsyncConnection.connect(PG_ADMIN, autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


# arq -------------------------------------------------------------------------------------------


def _arq_worker(marks: Any) -> None:
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    async def noop(ctx: dict[str, Any], n: int, sent: float) -> None:
        marks.put((n, time.time() - sent))

    worker = Worker(
        functions=[func(noop, name="noop")],
        redis_settings=RedisSettings.from_dsn(REDIS),
        max_jobs=4,
        handle_signals=True,
    )
    worker.run()


async def bench_arq(jobs: int) -> dict[str, float]:
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(REDIS))
    await pool.flushdb()
    try:
        marks: Any = MP.Queue()
        return await _measure(
            jobs,
            lambda n: pool.enqueue_job("noop", n, time.time()),
            MP.Process(target=_arq_worker, args=(marks,)),
            marks,
        )
    finally:
        await pool.flushdb()
        await pool.aclose()


# the measurement -------------------------------------------------------------------------------


async def _collect(marks: Any, count: int) -> list[float]:
    deadline = time.monotonic() + DEADLINE
    got: list[float] = []
    while len(got) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(got)} of {count} jobs ran in {DEADLINE} s")
        try:
            got.append(marks.get(timeout=0.05)[1])
        except Exception:
            await asyncio.sleep(0)
    return got


async def _measure(jobs: int, defer: Any, worker: Any, marks: Any) -> dict[str, float]:
    started = time.perf_counter()
    for n in range(jobs):
        await defer(n)
    enqueue_rate = jobs / (time.perf_counter() - started)
    worker.start()
    try:
        began = time.perf_counter()
        await _collect(marks, jobs)
        drain_rate = jobs / (time.perf_counter() - began)  # includes the worker's start-up
        pickups: list[float] = []
        for n in range(30):
            await defer(jobs + n)
            pickups += await _collect(marks, 1)
            await asyncio.sleep(0.05)
    finally:
        worker.terminate()
        worker.join(15)
    pickups.sort()
    return {
        "enqueue/s": enqueue_rate,
        "drain/s": drain_rate,
        "pickup median ms": statistics.median(pickups) * 1000,
        "pickup p95 ms": pickups[int(len(pickups) * 0.95) - 1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores; {args.jobs} no-op jobs, one worker running 4 at once")
    results = {
        "procrastinate (PostgreSQL)": asyncio.run(bench_procrastinate(args.jobs)),
        "arq (Redis)": asyncio.run(bench_arq(args.jobs)),
    }
    columns = list(next(iter(results.values())))
    print(f"| engine | {' | '.join(columns)} |")
    print(f"| --- | {' | '.join('---:' for _ in columns)} |")
    for engine, figures in results.items():
        print(f"| {engine} | {' | '.join(f'{figures[c]:.1f}' for c in columns)} |")


if __name__ == "__main__":
    sys.exit(main())
