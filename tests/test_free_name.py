"""The one "keep both" rule (``names.numbered`` and ``tree.free_name``): every way a file is
made under a name already taken (upload with duplicate=1, recover from the trash, copy into the
image bed, offline download) gets the same ``name(n).ext``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pgdb
import pytest
from sqlalchemy import select

from openpan.clock import utcnow
from openpan.db import migrate
from openpan.db.engine import Database
from openpan.db.models import SPACE_DISK, File, User
from openpan.errors import OpenpanError
from openpan.services import tree, users
from openpan.services.names import MAX_NAME, check_name, numbered
from openpan.settings import normalise_database_url


@pytest.mark.parametrize(
    ("name", "number", "expected"),
    [
        ("cat.png", 1, "cat(1).png"),
        ("cat.tar.gz", 2, "cat.tar(2).gz"),
        ("notes", 3, "notes(3)"),
        (".profile", 1, ".profile(1)"),
        ("trailing.", 1, "trailing(1)."),
        ("猫.jpg", 12, "猫(12).jpg"),
    ],
)
def test_numbered_puts_the_number_before_the_extension(
    name: str, number: int, expected: str
) -> None:
    assert numbered(name, number) == expected


def test_numbered_shortens_the_stem_of_a_long_name_and_keeps_the_extension() -> None:
    name = "a" * (MAX_NAME - 5) + ".png"  # the longest valid name
    check_name("filename", name)
    result = numbered(name, 12345)
    assert result.endswith("(12345).png")
    assert check_name("filename", result) == result
    no_extension = numbered("b" * (MAX_NAME - 1), 7)
    assert no_extension.endswith("(7)") and check_name("filename", no_extension)


pytestmark_embedded = pytest.mark.skipif(pgdb.postgres_tier(), reason="the embedded database")


def _with_db(tmp_path: Path, names: list[str], body_name: str, field: str = "filename") -> str:
    """``free_name`` for ``body_name`` in a disk directory holding ``names``."""

    async def main() -> str:
        db = Database(normalise_database_url(f"sqlite:///{tmp_path / 'openpan.db'}"))
        await migrate.upgrade(db.engine)
        await users.create_user(db, "ada")
        try:
            async with db.write() as session:
                user = (await session.execute(select(User))).scalars().one()
                now = utcnow()
                for taken in names:
                    session.add(
                        File(
                            user_id=user.id,
                            space=SPACE_DISK,
                            parent_id=0,
                            name=taken,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                await session.flush()
                return await tree.free_name(session, user.id, SPACE_DISK, 0, body_name, field)
        finally:
            await db.dispose()

    return asyncio.run(main())


@pytestmark_embedded
def test_a_free_name_is_kept_as_it_is(tmp_path: Path) -> None:
    assert _with_db(tmp_path, ["other.png"], "cat.png") == "cat.png"


@pytestmark_embedded
def test_the_first_free_number_is_taken(tmp_path: Path) -> None:
    taken = ["cat.png", "cat(1).png", "cat(3).png", "notes", "notes(1)"]
    assert _with_db(tmp_path, taken, "cat.png") == "cat(2).png"
    (tmp_path / "again").mkdir()
    assert _with_db(tmp_path / "again", taken, "notes") == "notes(2)"


@pytestmark_embedded
def test_too_many_numbered_names_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tree, "MAX_NUMBERED", 2)
    with pytest.raises(OpenpanError, match="fileName 同名文件过多"):
        _with_db(tmp_path, ["a.png", "a(1).png", "a(2).png"], "a.png", "fileName")
