"""Offline-download endpoints: the cloud disk's ``/api/v1/offline/download*`` and the image bed's
``/api/v1/oss/offline/download*``.

The cloud disk answers ``process`` as a float, the image bed as an int; the target directory is
``dirID`` (a number) for one and ``businessDirID`` (a string) for the other, either JSON type
accepted for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from openpan.api.params import Params
from openpan.api.routing import context, endpoint
from openpan.db.models import SPACE_DISK, SPACE_OSS, OfflineTask, User
from openpan.db.statuses import OfflineStatus
from openpan.services import offline
from openpan.services.context import Context

ID_LEN = 64


def _name(params: Params) -> str | None:
    # An empty fileName is what several clients send for "none".
    return params.string("fileName", required=False, max_len=1024) or None


def _callback(params: Params) -> str | None:
    return params.string("callBackUrl", required=False, max_len=offline.MAX_URL) or None


def _url(params: Params) -> str:
    return params.string("url", max_len=offline.MAX_URL, allow_empty=False)


def _task_id(params: Params) -> int:
    return params.integer("taskID")


async def _extras(ctx: Context, task: OfflineTask) -> dict[str, Any]:
    # Not in the real service's answer: what went wrong (failed) or is being retried (3), the
    # same text the callback's failReason carries, and the file a succeeded task made (the
    # callback's fileID). Extra fields break no client.
    retried = task.status in (OfflineStatus.FAILED, OfflineStatus.RETRYING)
    return {
        "failReason": task.fail_reason if retried else "",
        "fileID": await offline.made_file_id(ctx, task),
    }


async def _create(
    request: Request, params: Params, user: User, space: str, target: Callable[[], int | str]
) -> dict[str, Any]:
    """Start a download; the fields are read in the order the documents list them."""
    url = _url(params)
    task_id = await offline.create(
        context(request),
        user,
        space,
        url=url,
        file_name=_name(params),
        target=target(),
        callback_url=_callback(params),
    )
    return {"taskID": task_id}


@endpoint("/api/v1/offline/download")
async def disk_create(request: Request, params: Params, user: User) -> dict[str, Any]:
    def target() -> int:
        return params.integer("dirID", required=False, default=0, minimum=0)

    return await _create(request, params, user, SPACE_DISK, target)


@endpoint("/api/v1/offline/download/process")
async def disk_process(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    task = await offline.get_task(ctx, user, SPACE_DISK, _task_id(params))
    return {"process": float(task.process), "status": task.status, **await _extras(ctx, task)}


@endpoint("/api/v1/oss/offline/download")
async def oss_create(request: Request, params: Params, user: User) -> dict[str, Any]:
    def target() -> str:
        if params.has("type"):  # documented as required and fixed at 1; often left out
            params.integer("type", minimum=1, maximum=1)
        return params.string("businessDirID", required=False, max_len=ID_LEN)

    return await _create(request, params, user, SPACE_OSS, target)


@endpoint("/api/v1/oss/offline/download/process")
async def oss_process(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    task = await offline.get_task(ctx, user, SPACE_OSS, _task_id(params))
    return {"process": int(task.process), "status": task.status, **await _extras(ctx, task)}


routes = [disk_create, disk_process, oss_create, oss_process]
