"""The statements every offline task runs, in Core and written once: with the ORM, their own
cost was most of what a small download cost the server (see ``Database.rows``)."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Update, and_, bindparam, func, insert, or_, select, true, update

from openpan.db.engine import insert_unless_taken
from openpan.db.models import File, OfflineTask, User, table_of
from openpan.db.session import Session, hot
from openpan.db.statuses import OfflineStatus
from openpan.settings import Settings

tasks, users, files = table_of(OfflineTask), table_of(User), table_of(File)

TASK = select(tasks).where(tasks.c.id == bindparam("id"))
TASK_AND_USER = (
    select(tasks, users)
    .select_from(tasks.outerjoin(users, users.c.id == tasks.c.user_id))
    .where(tasks.c.id == bindparam("id"))
)
# A file under a name no live entry of its directory holds; no row if one does (the common
# case costs one statement, not a look and an insert).
INSERT_FILE_IF_FREE = {
    dialect: hot(statement.returning(files.c.id))
    for dialect, statement in insert_unless_taken(files).items()
}
INSERT_FILE = hot(insert(files).returning(files.c.id))

# Download slots: a task holds one while ``active``. The limits, as SQL, so that a task's
# creation and a task's end each decide in the statement that writes.
holding = tasks.alias("holding")
HELD = select(func.count()).select_from(holding).where(holding.c.active == true())
_FREE_SLOT = HELD.scalar_subquery() < bindparam("max_active")
# A task created now starts at once if a slot is free and its user is below their limit. Only
# the new task needs looking at: every transaction that frees a slot admits (``admit``), which
# leaves no waiting task that fits, so an older task of the user still waiting means the user
# is at their limit.
INSERT_TASK = hot(
    insert(tasks)
    .values(
        active=and_(
            _FREE_SLOT,
            HELD.where(holding.c.user_id == bindparam("owner")).scalar_subquery()
            < bindparam("per_user"),
        )
    )
    .returning(tasks.c.id, tasks.c.active)
)
# The oldest waiting task of a user below their limit, if a slot is free, takes it.
_waiting = tasks.alias("waiting")
ADMIT_ONE = hot(
    update(tasks)
    .where(
        tasks.c.id
        == select(_waiting.c.id)
        .where(
            _waiting.c.status == OfflineStatus.RUNNING,
            _waiting.c.active.is_(False),
            _waiting.c.user_id.not_in(
                select(holding.c.user_id)
                .where(holding.c.active == true())
                .group_by(holding.c.user_id)
                .having(func.count() >= bindparam("per_user"))
            ),
            _FREE_SLOT,
        )
        .order_by(_waiting.c.id)
        .limit(1)
        .scalar_subquery()
    )
    .values(active=True)
    .returning(tasks.c.id)
)
# Not ``in_``: a list SQLAlchemy expands at each execution would keep the statements that use
# it off the direct path (``openpan.db.direct``).
unfinished = or_(tasks.c.status == OfflineStatus.RUNNING, tasks.c.status == OfflineStatus.RETRYING)


def limits(settings: Settings) -> dict[str, int]:
    """The slot limits, as the parameters ``INSERT_TASK`` and ``ADMIT_ONE`` take."""
    return {
        "max_active": settings.offline_max_active,
        "per_user": settings.offline_max_active_per_user,
    }


@functools.lru_cache(maxsize=256)
def task_update(columns: frozenset[str]) -> Update:
    """``UPDATE`` of these columns of task ``task_id`` while it is unfinished (values
    ``new_<column>``): one statement per set of columns, so each is compiled once."""
    return hot(
        update(tasks)
        .where(tasks.c.id == bindparam("task_id"), unfinished)
        .values({name: bindparam(f"new_{name}", type_=tasks.c[name].type) for name in columns})
    )


async def update_unfinished(session: Session, task_id: int, values: dict[str, Any]) -> int:
    """Write ``values`` to the task unless it has ended; how many rows changed (0 or 1)."""
    parameters = {f"new_{name}": value for name, value in values.items()}
    parameters["task_id"] = task_id
    result = await session.execute(task_update(frozenset(values)), parameters)
    return int(result.rowcount)
