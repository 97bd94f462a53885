"""Waiting for offline downloads and copy tasks: poll the progress endpoint until the task ends.

The documents ask for patience between polls; the default interval is a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from openpan.client import _api
from openpan.client._exceptions import TaskFailed, WaitTimeout
from openpan.client._models import (
    CopyFailure,
    CopyProgress,
    CopyStatus,
    OfflineProgress,
    OfflineStatus,
    Space,
)
from openpan.client._protocol import Call, Flow, Sleep, call


def offline_process(space: Space, task_id: int) -> Call[OfflineProgress]:
    if space == "oss":
        return _api.oss_offline_process(task_id)
    return _api.offline_process(task_id)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _check(deadline: float | None, what: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise WaitTimeout(f"{what} is still running")


def wait_offline(
    space: Space,
    task_id: int,
    *,
    timeout: float | None = None,
    interval: float = 1.0,
    on_progress: Callable[[OfflineProgress], None] | None = None,
) -> Flow[OfflineProgress]:
    """Poll until the offline task succeeds (returned) or fails (``TaskFailed``)."""
    deadline = _deadline(timeout)
    while True:
        progress = yield from call(offline_process(space, task_id))
        if on_progress:
            on_progress(progress)
        if progress.status == OfflineStatus.SUCCEEDED:
            return progress
        if progress.status == OfflineStatus.FAILED:
            # openpan says why (failReason); the real service does not, and then it is "".
            reason = progress.fail_reason
            raise TaskFailed(
                f"offline download {task_id} failed" + (f": {reason}" if reason else ""),
                task_id=task_id,
                reason=reason,
            )
        _check(deadline, f"offline download {task_id}")
        yield Sleep(interval)


def wait_copy(
    task_id: str,
    *,
    timeout: float | None = None,
    interval: float = 1.0,
    on_progress: Callable[[CopyProgress], None] | None = None,
) -> Flow[CopyProgress]:
    """Poll until the copy task is done (returned) or failed (``TaskFailed``)."""
    deadline = _deadline(timeout)
    while True:
        progress = yield from call(_api.oss_copy_process(task_id))
        if on_progress:
            on_progress(progress)
        if progress.status == CopyStatus.DONE:
            return progress
        if progress.status == CopyStatus.FAILED:
            reason = progress.fail_msg
            raise TaskFailed(
                f"copy task {task_id} failed" + (f": {reason}" if reason else ""),
                task_id=task_id,
                reason=reason,
            )
        _check(deadline, f"copy task {task_id}")
        yield Sleep(interval)


def copy_failures(task_id: str) -> Flow[list[CopyFailure]]:
    """Every file the copy task could not copy, through all pages."""
    found: list[CopyFailure] = []
    page = 1
    while True:
        batch = yield from call(_api.oss_copy_fail(task_id, page=page, limit=100))
        found.extend(batch.files)
        if not batch.files or len(found) >= batch.total:
            return found
        page += 1
