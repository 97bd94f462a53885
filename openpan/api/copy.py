"""Copy tasks from the cloud disk into the image bed: ``/api/v1/oss/source/copy``,
``/copy/process`` and ``/copy/fail``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from openpan.api.disk import file_ids
from openpan.api.oss import ID_LEN
from openpan.api.params import Params
from openpan.api.routing import context, endpoint
from openpan.db.models import User
from openpan.services import copy_tasks


def _task_id(params: Params) -> str:
    return params.string("taskID", "taskId", max_len=ID_LEN, allow_empty=False)


@endpoint("/api/v1/oss/source/copy")
async def create(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    ids = file_ids(params, "fileIDs", "fileIds", max_items=copy_tasks.MAX_SOURCES)
    target = params.string("toParentFileID", "parentFileID", required=False, max_len=ID_LEN)
    # Documented as required strings; sent as numbers too, or not at all.
    if params.has("sourceType"):
        params.integer("sourceType", minimum=1, maximum=1)
    if params.has("type"):
        params.integer("type", minimum=1, maximum=1)
    task = await copy_tasks.create(ctx, user, ids, target)
    return {"taskID": task.id}


@endpoint("/api/v1/oss/source/copy/process")
async def process(request: Request, params: Params, user: User) -> dict[str, Any]:
    task = await copy_tasks.status(context(request), user, _task_id(params))
    return {"status": task.status, "failMsg": task.fail_msg}


@endpoint("/api/v1/oss/source/copy/fail")
async def fail(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    task_id = _task_id(params)
    limit = params.integer("limit", required=False, default=100, minimum=1, maximum=100)
    page = params.integer("page", required=False, default=1, minimum=1, maximum=1_000_000)
    total, rows = await copy_tasks.failures(ctx, user, task_id, page, limit)
    return {
        "total": total,
        "list": [{"fileId": r.file_id, "filename": r.filename, "failMsg": r.reason} for r in rows],
    }


routes = [create, process, fail]
