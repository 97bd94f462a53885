"""The ``offline.download`` job: one run of one task, to its end or to its next retry.

The bytes are received on the download loop (``loop``) into a partial file
(``openpan.storage.partial``) by a ``Transfer``; everything that touches the database happens
here, on the server's loop. Progress is written at most every ``offline_progress_interval``
seconds, after the bytes it reports are on disk: a download cut off (a lost connection, a
restart) resumes from there. Transient failures (connection lost, timeout, 5xx, 429) are
retried with backoff, status 3 meanwhile; permanent ones (404, 403, too large, not an image,
too many redirects, a refused address) fail at once with a reason a person can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from openpan.clock import utcnow
from openpan.db.models import SPACE_OSS, OfflineTask, User, from_row
from openpan.db.session import Session
from openpan.db.statuses import OfflineStatus
from openpan.errors import OpenpanError
from openpan.jobs.runner import Retry, enqueue
from openpan.services import callbacks
from openpan.services.context import Context
from openpan.services.emulation import Emulation
from openpan.services.fetch_guard import DestinationRefused
from openpan.services.images import SNIFF_BYTES
from openpan.services.offline.commit import commit
from openpan.services.offline.failures import Permanent, Transient
from openpan.services.offline.fetch import MAX_BACKOFF, Fetched, Resource, Transfer
from openpan.services.offline.loop import DownloadLoop
from openpan.services.offline.remote import Requester, SimulatedSession
from openpan.services.offline.statements import TASK_AND_USER, update_unfinished, users
from openpan.services.offline.tasks import DOWNLOAD_JOB, admit
from openpan.storage import StorageError
from openpan.storage.partial import PartialFile, open_partial, remove_partial

log = logging.getLogger("openpan.offline")

# Marks the job being run as done in the given transaction (what the in-process runner
# offers): the transaction that ends a task then ends its job too.
SettleJob = Callable[[Session], Awaitable[None]]


async def download_job(
    ctx: Context, payload: dict[str, Any], *, settle_job: SettleJob | None = None
) -> None:
    """Run (or resume) the task ``payload["task_id"]`` to its end or its next retry."""
    await _Download(ctx, int(payload["task_id"]), settle_job).run()


async def close_connections() -> None:
    """Close the connections downloads keep open to origins (at shutdown)."""
    await DownloadLoop.close()


def _process(done: int, total: int | None) -> float:
    if not total:
        return 0.0
    # 100 means done: a download whose bytes are all here is not a file yet.
    return min(99.9, round(done * 100.0 / total, 2))


class _Download:
    """One run of the download job for one task; the ``Listener`` of its transfer."""

    def __init__(self, ctx: Context, task_id: int, settle_job: SettleJob | None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.task_id = task_id
        self.settle_job = settle_job
        self.task: OfflineTask
        self.user: User | None = None
        self.transfer: Transfer | None = None
        self.durable = 0  # bytes of the partial file known to be on disk and recorded
        # Task fields learnt but not yet written: they go with the next write the task needs
        # anyway (progress, retry, end), so a small download costs no extra transaction.
        self.unsaved: dict[str, Any] = {}
        self.reporting: Future[None] | None = None  # a progress write in flight
        self.loop: asyncio.AbstractEventLoop  # the server's, where the database is used

    async def run(self) -> None:
        async with self.ctx.db.rows() as connection:
            found = (await connection.execute(TASK_AND_USER, {"id": self.task_id})).first()
        if found is None or OfflineStatus(found.status).finished or not found.active:
            return  # finished already (a job re-run after a crash), or never admitted
        self.task = from_row(OfflineTask, found)
        self.user = None if found._mapping[users.c.id] is None else from_row(User, found)
        self.loop = asyncio.get_running_loop()
        try:
            fetched = await DownloadLoop.run(self._receive())
            await self._commit(fetched)
        except Permanent as exc:
            await self._fail(str(exc))
        except DestinationRefused as exc:
            await self._fail(f"链接被拒绝: {exc} (destination refused)")
        except Transient as exc:
            await self._retry_or_fail(str(exc), exc.retry_after)
        except StorageError as exc:
            await self._retry_or_fail(f"存储失败: {exc} (storage error)", None)
        except OpenpanError as exc:
            await self._fail(exc.message)
        except (Retry, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug must not leave the task running forever
            log.exception("offline task %s failed unexpectedly", self.task_id)
            await self._retry_or_fail(f"内部错误: {type(exc).__name__} (internal error)", None)
        finally:
            if self.reporting is not None:  # only when cut off (shutdown): ends were settled
                self.reporting.cancel()

    # Receiving, on the download loop ----------------------------------------------------------

    async def _receive(self) -> Fetched:
        task = self.task
        partial, head = await open_partial(
            self.ctx.temp_files, task.partial_path, task.bytes_done, SNIFF_BYTES
        )
        if partial.path != task.partial_path:
            self.learnt(partial_path=partial.path)
        if partial.written != task.bytes_done:
            self.learnt(bytes_done=partial.written)
        if task.status != OfflineStatus.RUNNING:
            # Shown as retrying until the first progress write says otherwise.
            self.learnt(status=OfflineStatus.RUNNING)
        self.durable = partial.written
        if task.space == SPACE_OSS:
            cap: int | None = self.settings.oss_max_file_size
        else:
            cap = self.settings.offline_max_size or None
        resource = Resource(
            url=task.url,
            space=task.space,
            validator=task.validator,
            total=task.bytes_total,
            named=task.origin_name is not None,
            cap=cap,
        )
        self.transfer = Transfer(self.settings, resource, partial, head, self)
        session: Requester = DownloadLoop.session(self.settings)
        if self.settings.emulator:
            session = SimulatedSession(self.ctx.part(Emulation).remotes, session)
        return await self.transfer.run(session)

    def learnt(self, **values: Any) -> None:
        """Keep task fields to write with the next write the task needs anyway."""
        for name, value in values.items():
            setattr(self.task, name, value)
        self.unsaved.update(values)
        if "bytes_done" in values:  # the bytes kept were thrown away: nothing of them counts
            self.durable = values["bytes_done"]

    def received(self, partial: PartialFile, total: int | None) -> None:
        """Record progress in the background, if there is news and no write is in flight: the
        download goes on meanwhile. Only bytes known to be on disk count, so a resume can trust
        the number."""
        if partial.synced <= self.durable:
            return
        if self.reporting is not None and not self.reporting.done():
            return
        self.durable = partial.synced
        self.reporting = asyncio.run_coroutine_threadsafe(
            self._record(bytes_done=self.durable, process=_process(self.durable, total)),
            self.loop,
        )

    # Outcomes, on the server's loop -----------------------------------------------------------

    async def _commit(self, fetched: Fetched) -> None:
        assert self.transfer is not None
        await self._settle()
        if self.user is None:
            raise Permanent("用户不存在 (the user is gone)")
        path = Path(self.transfer.partial.path)
        file_id = await commit(self.ctx, self.task, self.user, fetched, path, self._succeeded)
        if file_id is None:
            return  # ended by another run meanwhile
        self._notify_ended()
        log.info("offline task %s done: file %s", self.task_id, file_id)

    async def _succeeded(self, session: Session, file_id: int, size: int) -> bool:
        return await self._finish(session, OfflineStatus.SUCCEEDED, file_id=file_id, size=size)

    async def _fail(self, reason: str) -> None:
        await self._settle()
        async with self.ctx.db.write() as session:
            await self._finish(session, OfflineStatus.FAILED, reason=reason, file_id=None)
        remove_partial(self.task.partial_path)
        self._notify_ended()

    async def _retry_or_fail(self, reason: str, retry_after: float | None) -> None:
        attempts = self.task.attempts + 1
        if attempts > self.settings.offline_retries:
            await self._fail(f"{reason}; 已重试{attempts - 1}次 (gave up after retries)")
            return
        await self._settle()
        if self.transfer is not None:
            with contextlib.suppress(Exception):  # best effort: resume from less otherwise
                self.durable = await self.transfer.partial.sync()
        delay = self.settings.offline_retry_delay * 2 ** (attempts - 1) * random.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        delay = min(delay, MAX_BACKOFF)
        await self._record(
            status=OfflineStatus.RETRYING,
            attempts=attempts,
            fail_reason=reason,
            bytes_done=self.durable,
            process=_process(self.durable, self.task.bytes_total),
        )
        raise Retry(delay, reason)

    async def _record(self, **values: Any) -> None:
        """Write what was learnt and ``values`` to the task, unless it has ended meanwhile."""
        learnt, self.unsaved = self.unsaved, {}
        try:
            async with self.ctx.db.write() as session:
                await update_unfinished(
                    session, self.task_id, {**learnt, **values, "updated_at": utcnow()}
                )
        except BaseException:
            self.unsaved = {**learnt, **self.unsaved}
            raise

    async def _settle(self) -> None:
        """Let a progress write in flight land before the write that ends or pauses the task."""
        if self.reporting is not None:
            reporting, self.reporting = self.reporting, None
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(reporting)

    async def _finish(
        self,
        session: Session,
        status: OfflineStatus,
        *,
        reason: str = "",
        file_id: int | None,
        size: int | None = None,
    ) -> bool:
        """End the task in the caller's transaction: free its slot for the next one, queue the
        callback, settle the job. False if it had ended already."""
        values: dict[str, Any] = {
            **self.unsaved,
            "status": status,
            "fail_reason": reason,
            "file_id": file_id,
            "active": False,
            "partial_path": None,
            "updated_at": utcnow(),
            "process": 100.0 if status == OfflineStatus.SUCCEEDED else 0.0,
        }
        if size is not None:
            values.update(bytes_done=size, bytes_total=size)
        if await update_unfinished(session, self.task_id, values) != 1:
            return False
        if self.task.callback_url:
            await enqueue(session, callbacks.CALLBACK_JOB, {"task_id": self.task_id})
        # One slot was freed: every transaction that frees one admits, so no waiting task fitted
        # before and at most one fits now.
        await admit(session, self.settings, at_most=1)
        if self.settle_job is not None:
            await self.settle_job(session)
        return True

    def _notify_ended(self) -> None:
        """Wake the workers of what the task's end queued: the next download, its callback."""
        if self.task.callback_url:
            self.ctx.jobs.notify(DOWNLOAD_JOB, callbacks.CALLBACK_JOB)
        else:
            self.ctx.jobs.notify(DOWNLOAD_JOB)
