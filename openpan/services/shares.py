"""Image-bed folders shared as public, read-only galleries (``/s/<token>``).

Off by default: a folder is shared when its owner makes a link, and the link dies when it is
revoked or the folder is deleted. The token is the only secret, 128 random bits; the page
shows what is directly in the folder, never its subfolders, its owner's other files or IDs
that would open anything else.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from openpan.clock import utcnow
from openpan.db.models import SPACE_OSS, File, FolderShare, User
from openpan.errors import NotFound
from openpan.services import oss
from openpan.services.context import Context

MAX_TOKEN = 64


@dataclass(frozen=True)
class Share:
    """A shared folder: its token, folder (``oss_id`` and name) and when it was made."""

    token: str
    folder_oss_id: str
    folder_name: str
    created_at: object


async def create(ctx: Context, user: User, folder_oss_id: str) -> Share:
    """The share link of one of ``user``'s image-bed folders (the existing one if it is
    already shared: a folder has one link at a time)."""
    async with ctx.db.write() as session:
        folder = await oss.resolve_dir(session, user, "fileID", folder_oss_id)
        if folder is None:
            raise NotFound("fileID 根目录不能分享 (the root folder cannot be shared)")
        existing = await session.scalar(
            select(FolderShare).where(FolderShare.folder_id == folder.id)
        )
        if existing is None:
            existing = FolderShare(
                token=secrets.token_urlsafe(16),
                user_id=user.id,
                folder_id=folder.id,
                created_at=utcnow(),
            )
            session.add(existing)
        return Share(existing.token, folder.oss_id or "", folder.name, existing.created_at)


async def list_for(ctx: Context, user: User) -> list[Share]:
    """``user``'s shared folders, newest first."""
    async with ctx.db.read() as session:
        rows = await session.execute(
            select(FolderShare, File)
            .join(File, File.id == FolderShare.folder_id)
            .where(FolderShare.user_id == user.id)
            .order_by(FolderShare.created_at.desc())
        )
        return [Share(s.token, f.oss_id or "", f.name, s.created_at) for s, f in rows]


async def revoke(ctx: Context, user: User, token: str) -> None:
    """End a share link of ``user``'s (another user's token is "no such link")."""
    async with ctx.db.write() as session:
        gone = await session.execute(
            delete(FolderShare).where(FolderShare.token == token, FolderShare.user_id == user.id)
        )
        if not gone.rowcount:
            raise NotFound("token 分享不存在 (no such share link)")


async def shared_folder(ctx: Context, token: str) -> tuple[User, File] | None:
    """The owner and folder a share token opens, or None (unknown, revoked, disabled owner)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    async with ctx.db.read() as session:
        row = (
            await session.execute(
                select(User, File)
                .join(FolderShare, FolderShare.user_id == User.id)
                .join(File, File.id == FolderShare.folder_id)
                .where(FolderShare.token == token, File.space == SPACE_OSS)
            )
        ).first()
    if row is None or row[0].disabled:
        return None
    return row[0], row[1]
