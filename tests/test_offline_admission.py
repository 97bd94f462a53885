"""Handing out download slots (``offline.admit``), on a real database: oldest waiting task first,
each user within their own limit, and the tasks of users at their limit never stand in the way
of other users' tasks, however many of them wait in front."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pgdb
from sqlalchemy import func, select

from openpan.clock import utcnow
from openpan.db import migrate
from openpan.db.engine import Database
from openpan.db.models import SPACE_DISK, Job, OfflineTask
from openpan.services import offline, users
from openpan.services.offline import statements
from openpan.settings import Settings


async def _database_with_users(tmp_path: Path, names: list[str]) -> tuple[Database, dict[str, int]]:
    """A fresh database of this run's tier with a user of each name; their IDs by name."""
    db = Database(pgdb.tier_database(tmp_path))
    await migrate.upgrade(db.engine)
    ids: dict[str, int] = {}
    for name in dict.fromkeys(names):
        await users.create_user(db, name)
        async with db.read() as session:
            ids[name] = (await users.get_by_name(session, name)).id
    return db, ids


async def _admit(
    tmp_path: Path, waiting: list[str], active: list[str], at_most: int | None = None
) -> tuple[list[str], int]:
    """Users ``active`` hold a slot each, ``waiting`` wait in this order; admit once (four slots
    in all, one per user). Returns whose tasks were admitted (oldest first) and how many
    download jobs were queued."""
    db, ids = await _database_with_users(tmp_path, [*active, *waiting])
    now = utcnow()
    async with db.write() as session:
        for name, is_active in [(n, True) for n in active] + [(n, False) for n in waiting]:
            session.add(
                OfflineTask(
                    user_id=ids[name],
                    space=SPACE_DISK,
                    url="http://origin.example/f",
                    active=is_active,
                    created_at=now,
                    updated_at=now,
                )
            )
    settings = Settings(offline_max_active=4, offline_max_active_per_user=1)
    async with db.write() as session:
        assert await offline.admit(session, settings, at_most=at_most) == len(waiting) - (
            await session.scalar(
                select(func.count()).where(OfflineTask.active.is_(False)).select_from(OfflineTask)
            )
        )
    by_id = {user_id: name for name, user_id in ids.items()}
    async with db.read() as session:
        admitted = (
            await session.scalars(
                select(OfflineTask.user_id)
                .where(OfflineTask.active.is_(True))
                .order_by(OfflineTask.id)
            )
        ).all()
        jobs = (await session.scalars(select(Job.payload))).all()
    await db.dispose()
    assert all(json.loads(payload)["task_id"] for payload in jobs)
    return [by_id[user_id] for user_id in admitted][len(active) :], len(jobs)


def test_users_at_their_limit_do_not_hold_up_the_others(tmp_path: Path) -> None:
    # Alice holds her one slot and has 300 more tasks waiting in front of Bob's and Carol's.
    waiting = ["alice"] * 300 + ["bob", "carol", "bob"]
    admitted, jobs = asyncio.run(_admit(tmp_path, waiting, active=["alice"]))
    assert admitted == ["bob", "carol"]
    assert jobs == 2


def test_free_slots_go_to_the_oldest_tasks_one_per_user(tmp_path: Path) -> None:
    waiting = ["dave", "dave", "erin", "frank", "gina", "erin"]
    admitted, jobs = asyncio.run(_admit(tmp_path, waiting, active=[]))
    assert admitted == ["dave", "erin", "frank", "gina"]  # four slots, the second dave waits
    assert jobs == 4


def test_at_most_caps_the_admissions(tmp_path: Path) -> None:
    admitted, jobs = asyncio.run(_admit(tmp_path, ["hal", "ivy", "jon"], active=[], at_most=1))
    assert admitted == ["hal"]
    assert jobs == 1


def test_nothing_is_admitted_while_more_than_the_limit_hold_slots(tmp_path: Path) -> None:
    # Five hold a slot (the limit was lowered to four since): ending one frees nothing.
    holding = ["kim", "lou", "max", "ned", "oli"]
    admitted, jobs = asyncio.run(_admit(tmp_path, ["pat", "quinn"], active=holding))
    assert admitted == []
    assert jobs == 0


def test_a_user_at_the_limit_waits_while_slots_are_free(tmp_path: Path) -> None:
    admitted, jobs = asyncio.run(_admit(tmp_path, ["ray", "sam", "ray"], active=["ray"]))
    assert admitted == ["sam"]
    assert jobs == 1


def test_slots_free_part_way_go_only_as_far_as_the_global_limit(tmp_path: Path) -> None:
    admitted, jobs = asyncio.run(_admit(tmp_path, ["tom", "uma", "val", "wes", "xia"], ["sue"]))
    assert admitted == ["tom", "uma", "val"]  # four slots, one held
    assert jobs == 3


async def _created(tmp_path: Path, owners: list[str]) -> list[bool]:
    """Tasks created one after the other by ``owners`` (two slots in all, one per user):
    whether each started at once."""
    db, ids = await _database_with_users(tmp_path, owners)
    started = []
    for name in owners:
        async with db.write() as session:
            now = utcnow()
            row = await session.execute(
                statements.INSERT_TASK,
                {
                    "user_id": ids[name],
                    "owner": ids[name],
                    "space": SPACE_DISK,
                    "url": "http://origin.example/f",
                    "created_at": now,
                    "updated_at": now,
                    "max_active": 2,
                    "per_user": 1,
                },
            )
            started.append(row.one().active)
    await db.dispose()
    return started


def test_a_new_task_starts_at_once_only_within_both_limits(tmp_path: Path) -> None:
    # yan's second waits for yan's first; zoe's fits; amy finds both slots held.
    started = asyncio.run(_created(tmp_path, ["yan", "yan", "zoe", "amy"]))
    assert started == [True, False, True, False]
