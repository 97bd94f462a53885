"""Temporary download links of cloud-disk files (``download_info``) and the daily traffic quota.

A link is ``{public}/download/{fileId}/{name}?expires=…&signature=…``: an HMAC over the file,
its owner, its bytes (etag) and the deadline, so it opens that one file until it expires and
nothing else. Non-VIP users have a daily self-use traffic allowance; once the bytes actually
sent today reach it, ``download_info`` answers 5113 and links already handed out stop opening.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import select

from openpan.clock import epoch, utcnow
from openpan.db.models import SPACE_DISK, Blob, File, User
from openpan.errors import NotFound, OpenpanError, TrafficExceeded
from openpan.services import disk
from openpan.services.context import Context
from openpan.services.daily_traffic import DailyTraffic, today

PATH_PREFIX = "/download"


def _signature(key: bytes, file: File, expires: int) -> str:
    message = f"download:{file.id}:{file.user_id}:{file.etag}:{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def traffic_message(limit: int) -> str:
    """The real service's 5113 message, with this server's allowance in it."""
    if limit % 1024**3 == 0:
        amount = f"{limit // 1024**3}GB"
    elif limit % 1024**2 == 0:
        amount = f"{limit // 1024**2}MB"
    else:
        amount = f"{limit}字节"
    return (
        f"您今日自用下载流量已超出{amount}上限，升级VIP会员可无限流量下载 "
        "(today's download traffic is used up; it resets at midnight)"
    )


async def _traffic_left(ctx: Context, user: User) -> bool:
    if user.vip:
        return True
    async with ctx.db.read() as session:
        used = await ctx.part(DailyTraffic).used(session, user.id, today(ctx.settings.timezone))
    return used < ctx.settings.download_traffic_daily


async def download_url(ctx: Context, user: User, file_id: int) -> str:
    """A signed, expiring URL for one of the user's cloud-disk files (``download_info``)."""
    async with ctx.db.read() as session:
        file = await disk.get(session, user, file_id)
        if file is None or file.is_dir or await disk.in_trash(session, user, file):
            raise NotFound(f"fileId 文件不存在，检查传入fileId是否正确 (no such file: {file_id})")
    if not await _traffic_left(ctx, user):
        raise TrafficExceeded(traffic_message(ctx.settings.download_traffic_daily))
    expires = epoch(utcnow()) + ctx.settings.download_link_ttl
    signature = _signature(ctx.signing_key, file, expires)
    return (
        f"{ctx.settings.effective_public_url}{PATH_PREFIX}/{file.id}/{quote(file.name, safe='')}"
        f"?expires={expires}&signature={signature}"
    )


@dataclass
class Download:
    """What a valid link opens: the file, where its bytes are, and whom to charge."""

    file: File
    key: str
    user_id: int
    day: str


async def open_link(ctx: Context, file_id: int, expires: int, signature: str) -> Download:
    """Check a link and find its file.

    ``NotFound`` when the file is gone (or in the trash); another ``OpenpanError`` when the link
    is forged, expired, or its owner's traffic for the day is spent.
    """
    async with ctx.db.read() as session:
        row = (
            await session.execute(
                select(File, Blob.key, User)
                .join(Blob, Blob.id == File.blob_id)
                .join(User, User.id == File.user_id)
                .where(File.id == file_id, File.space == SPACE_DISK, File.is_dir.is_(False))
            )
        ).first()
        if row is None:
            raise NotFound("no such file")
        file, key, user = row
        if not hmac.compare_digest(_signature(ctx.signing_key, file, expires), signature):
            # Also what a link becomes when its file was overwritten with other bytes.
            raise OpenpanError("signature 签名无效 (bad signature)")
        if await disk.in_trash(session, user, file):
            raise NotFound("no such file")
    if expires < epoch(utcnow()):
        raise OpenpanError("expires 下载地址已过期 (link expired)")
    if not await _traffic_left(ctx, user):
        raise TrafficExceeded(traffic_message(ctx.settings.download_traffic_daily))
    return Download(file=file, key=key, user_id=user.id, day=today(ctx.settings.timezone))


def count_sent(ctx: Context, download: Download, sent: int) -> None:
    """Charge bytes a link actually sent to its owner's traffic for the day it started."""
    ctx.part(DailyTraffic).add(ctx.db, download.user_id, download.day, sent)
