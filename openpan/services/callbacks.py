"""Callbacks: when an offline download ends, ``POST callBackUrl`` with what became of it.

The body is the real service's JSON ``{url, status (0 ok, 1 failed), failReason, fileID}``.
openpan adds ``X-Openpan-Signature: sha256=<hex>``, an HMAC-SHA256 of the exact body bytes under
the user's callback secret (``openpan user callback-secret NAME``), so a receiver can tell a
genuine callback from a forged one; clients that do not know the header ignore it.

A callback is its own job, queued in the transaction that ends the task. A receiver that is down
or answers anything but 2xx is tried again with backoff, ``callback_retries`` times; once one
delivery succeeds, the task is marked and the callback is never sent again. The callback goes
through the same SSRF guard as the download.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from typing import Any

import aiohttp
from sqlalchemy import select, update
from yarl import URL

from openpan.db.engine import Database
from openpan.db.models import SPACE_OSS, File, OfflineTask, User
from openpan.db.statuses import OfflineStatus
from openpan.jobs.runner import Retry
from openpan.services.context import Context
from openpan.services.fetch_guard import DestinationRefused, GuardedSession
from openpan.services.users import get_by_name

log = logging.getLogger("openpan.callbacks")

CALLBACK_JOB = "offline.callback"
SIGNATURE_HEADER = "X-Openpan-Signature"


def sign(secret: str, body: bytes) -> str:
    """The ``X-Openpan-Signature`` value for ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def made_file_id(task: OfflineTask, file: File | None) -> int | str:
    """The ID of the file a task made, as its space's clients know it: a number for the cloud
    disk, an opaque string for the image bed; 0 or ``""`` when it made none (or it is gone)."""
    if task.status != OfflineStatus.SUCCEEDED or file is None:
        return "" if task.space == SPACE_OSS else 0
    if task.space == SPACE_OSS:
        return file.oss_id or ""
    return file.id


def body_of(task: OfflineTask, file: File | None) -> bytes:
    """The callback body; ``fileID`` as ``made_file_id`` tells."""
    succeeded = task.status == OfflineStatus.SUCCEEDED and file is not None
    file_id = made_file_id(task, file)
    payload = {
        "url": task.url,
        "status": 0 if succeeded else 1,
        "failReason": "" if succeeded else (task.fail_reason or "下载失败 (download failed)"),
        "fileID": file_id,
    }
    return json.dumps(payload, ensure_ascii=False).encode()


async def secret_of(ctx: Context, user_id: int) -> str:
    """The user's callback secret, made on first use for users that have none yet."""
    async with ctx.db.read() as session:
        secret = await session.scalar(select(User.callback_secret).where(User.id == user_id))
    if secret:
        return secret
    async with ctx.db.write() as session:
        user = await session.get(User, user_id)
        if user is None:
            return ""
        if not user.callback_secret:
            user.callback_secret = secrets.token_hex(32)
        return user.callback_secret


async def callback_secret(db: Database, name: str, *, reset: bool = False) -> str:
    """A user's callback secret (``openpan user callback-secret``); ``reset`` makes a new one."""
    async with db.write() as session:
        user = await get_by_name(session, name)
        if reset or not user.callback_secret:
            user.callback_secret = secrets.token_hex(32)
        return user.callback_secret


async def deliver_job(ctx: Context, payload: dict[str, Any]) -> None:
    """The ``offline.callback`` job: one delivery attempt, retried with backoff until done."""
    task_id = int(payload["task_id"])
    async with ctx.db.read() as session:
        task = await session.get(OfflineTask, task_id)
        file = await session.get(File, task.file_id) if task and task.file_id else None
    if task is None or task.callback_done or not task.callback_url or task.status not in (1, 2):
        return
    body = body_of(task, file)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(await secret_of(ctx, task.user_id), body),
    }
    settings = ctx.settings
    problem = ""
    try:
        # A session per delivery: callbacks are few, and their receivers seldom the same.
        async with GuardedSession(settings.fetch_allow, settings.callback_timeout) as session:
            response = await session.request(
                "POST", URL(task.callback_url), headers=headers, data=body
            )
            response.release()
        if 200 <= response.status < 300:
            await _mark(ctx, task_id, done=True)
            return
        problem = f"HTTP {response.status}"
    except DestinationRefused as exc:
        log.warning("callback of offline task %s refused: %s", task_id, exc)
        await _mark(ctx, task_id, done=False, attempts=task.callback_attempts + 1)
        return
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: a bad URL
        problem = f"{type(exc).__name__}: {exc}"
    attempts = task.callback_attempts + 1
    await _mark(ctx, task_id, done=False, attempts=attempts)
    if attempts > settings.callback_retries:
        log.warning(
            "callback of offline task %s given up after %s tries: %s", task_id, attempts, problem
        )
        return
    raise Retry(min(settings.callback_retry_delay * 2 ** (attempts - 1), 3600.0), problem)


async def _mark(ctx: Context, task_id: int, *, done: bool, attempts: int | None = None) -> None:
    values: dict[str, Any] = {"callback_done": done}
    if attempts is not None:
        values["callback_attempts"] = attempts
    async with ctx.db.write() as session:
        await session.execute(update(OfflineTask).where(OfflineTask.id == task_id).values(**values))
