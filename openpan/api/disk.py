"""Cloud-disk (云盘) file endpoints: ``/upload/v1/file/mkdir``, ``/api/v1|v2/file/*``,
``/api/v1/user/info``.

IDs here are JSON numbers; the root directory is ``0`` and the last page is ``-1``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request

from openpan.api.params import Params
from openpan.api.routing import context, endpoint
from openpan.clock import format_api_time, to_local
from openpan.db.models import File, User
from openpan.errors import FieldError
from openpan.services import disk
from openpan.services.context import Context

ID_MAX = 2**62  # beyond any ID openpan hands out; larger input is refused, not looked up
MAX_BATCH = 100
MAX_RENAMES = 30
VIP_END = "9999-12-31 23:59:59"
UNLIMITED = 1024**5  # what "traffic left" says for a VIP user (1 PB: plenty, and a number)


def file_id(params: Params, name: str, *aliases: str) -> int:
    """A file ID field (a positive number, or its decimal text)."""
    return params.integer(name, *aliases, minimum=1, maximum=ID_MAX)


def dir_id(params: Params, name: str, *aliases: str) -> int:
    """A directory ID field; absent means the root (``0``)."""
    return params.integer(name, *aliases, required=False, default=0, minimum=0, maximum=ID_MAX)


def file_ids(params: Params, name: str, *aliases: str, max_items: int = MAX_BATCH) -> list[int]:
    """A list of file IDs, at most ``max_items``."""
    ids = params.integers(name, *aliases, max_items=max_items)
    if any(not 1 <= i <= ID_MAX for i in ids):
        raise FieldError(name, "的元素必须是正整数的文件ID (items must be file IDs)")
    return ids


def _times(ctx: Context, entry: File) -> dict[str, str]:
    tz = ctx.settings.timezone
    return {
        "createAt": format_api_time(entry.created_at, tz),
        "updateAt": format_api_time(entry.updated_at, tz),
    }


def item_v2(ctx: Context, entry: File) -> dict[str, Any]:
    """One entry as ``/api/v2/file/list`` and ``/api/v1/file/infos`` show it."""
    return {
        "fileId": entry.id,
        "filename": entry.name,
        "parentFileId": entry.parent_id,
        "type": 1 if entry.is_dir else 0,
        "etag": entry.etag,
        "size": entry.size,
        "category": disk.category(entry),
        "status": entry.status,
        "punishFlag": 0,
        "s3KeyFlag": f"{entry.user_id}-0",
        "storageNode": "m0",
        "trashed": 1 if entry.trashed else 0,
        **_times(ctx, entry),
    }


def _go_time(ctx: Context, moment: datetime) -> str:
    # The old listing prints times the way Go does: "2025-02-24 17:57:01 +0800 CST".
    return to_local(moment, ctx.settings.timezone).strftime("%Y-%m-%d %H:%M:%S %z %Z")


def item_v1(ctx: Context, entry: File, parent_name: str) -> dict[str, Any]:
    """One entry as ``/api/v1/file/list`` shows it."""
    return {
        "fileID": entry.id,
        "filename": entry.name,
        "parentFileId": entry.parent_id,
        "parentName": parent_name,
        "type": 1 if entry.is_dir else 0,
        "etag": entry.etag,
        "size": entry.size,
        "contentType": "0",
        "category": disk.category(entry),
        "hidden": False,
        "status": entry.status,
        "punishFlag": 0,
        "s3KeyFlag": f"{entry.user_id}-0",
        "storageNode": "m0",
        "trashed": entry.trashed,
        "createAt": _go_time(ctx, entry.created_at),
        "updateAt": _go_time(ctx, entry.updated_at),
        "thumbnail": "",
        "downloadUrl": "",
    }


@endpoint("/upload/v1/file/mkdir")
async def mkdir(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    name = params.string("name", "dirName", "filename", max_len=1024)
    parent = dir_id(params, "parentID", "parentFileID")
    created = await disk.mkdir(ctx, user, parent, name)
    return {"dirID": created.id}


def _search(params: Params) -> str:
    return params.string("searchData", required=False, max_len=255).strip()


@endpoint("/api/v2/file/list")
async def list_v2(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    parent = dir_id(params, "parentFileId", "parentFileID")
    limit = params.integer("limit", required=False, default=100, minimum=1, maximum=100)
    search = _search(params)
    mode = params.integer("searchMode", required=False, default=0, minimum=0, maximum=1)
    last = params.integer("lastFileId", "lastFileID", required=False, default=0, minimum=-1)
    trashed = params.boolean("trashed") if params.has("trashed") else None
    page = await disk.list_v2(ctx, user, parent, limit, last, search, mode == 1, trashed)
    return {"lastFileId": page.last_file_id, "fileList": [item_v2(ctx, f) for f in page.files]}


@endpoint("/api/v1/file/list")
async def list_v1(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    parent = dir_id(params, "parentFileId", "parentFileID")
    page_no = params.integer("page", required=False, default=1, minimum=1, maximum=1_000_000)
    limit = params.integer("limit", required=False, default=100, minimum=1, maximum=100)
    order_by = params.string("orderBy", required=False, default="file_id", max_len=32).lower()
    if order_by not in disk.ORDER_COLUMNS:
        raise FieldError(
            "orderBy", "只能是 file_id、file_name、size (use file_id, file_name, size)"
        )
    direction = params.string("orderDirection", required=False, default="asc", max_len=8).lower()
    if direction not in ("asc", "desc"):
        raise FieldError("orderDirection", "只能是 asc 或 desc (use asc or desc)")
    trashed = params.boolean("trashed")
    page = await disk.list_v1(
        ctx, user, parent, page_no, limit, order_by, direction == "desc", trashed, _search(params)
    )
    return {
        "total": page.total,
        "fileList": [item_v1(ctx, f, page.parent_names.get(f.parent_id, "")) for f in page.files],
    }


@endpoint("/api/v1/file/detail")
async def detail(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    entry, size = await disk.detail(ctx, user, file_id(params, "fileID", "fileId"))
    return {
        "fileID": entry.id,
        "filename": entry.name,
        "type": 1 if entry.is_dir else 0,
        "size": size,
        "etag": entry.etag,
        "status": entry.status,
        "parentFileID": entry.parent_id,
        "createAt": format_api_time(entry.created_at, ctx.settings.timezone),
        "trashed": 1 if entry.trashed else 0,
    }


@endpoint("/api/v1/file/infos")
async def infos(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    entries = await disk.infos(ctx, user, file_ids(params, "fileIds", "fileIDs"))
    items = [item_v2(ctx, f) for f in entries]
    # The document's table says fileList, its example (the real answer) says list: send both.
    return {"list": items, "fileList": items}


@endpoint("/api/v1/file/move")
async def move(request: Request, params: Params, user: User) -> None:
    ctx = context(request)
    ids = file_ids(params, "fileIDs", "fileIds")
    target = params.integer(
        "toParentFileID", "parentFileID", required=False, minimum=0, maximum=ID_MAX
    )
    await disk.move(ctx, user, ids, target)


@endpoint("/api/v1/file/name")
async def rename(request: Request, params: Params, user: User) -> None:
    ctx = context(request)
    target = file_id(params, "fileId", "fileID")
    name = params.string("fileName", "filename", "name", max_len=1024)
    await disk.rename(ctx, user, target, name)


@endpoint("/api/v1/file/rename")
async def rename_many(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    entries = params.strings("renameList", max_items=MAX_RENAMES, max_len=1100)
    renames: list[tuple[int, str]] = []
    for entry in entries:
        number, bar, name = entry.partition("|")
        number = number.strip()
        if not bar or not (number.isascii() and number.isdigit()) or len(number) > 18:
            raise FieldError(
                "renameList", f"的元素格式为 文件ID|新的文件名 (use 'id|name'): {entry!r}"
            )
        renames.append((int(number), name))
    done, failed = await disk.rename_many(ctx, user, renames)
    tz = ctx.settings.timezone
    return {
        "successList": [
            {"fileID": f.id, "updateAt": format_api_time(f.updated_at, tz)} for f in done
        ],
        "failList": [{"fileID": i, "message": message} for i, message in failed],
    }


@endpoint("/api/v1/file/trash")
async def trash(request: Request, params: Params, user: User) -> None:
    await disk.trash(context(request), user, file_ids(params, "fileIDs", "fileIds"))


@endpoint("/api/v1/file/recover")
async def recover(request: Request, params: Params, user: User) -> dict[str, Any]:
    abnormal = await disk.recover(context(request), user, file_ids(params, "fileIDs", "fileIds"))
    return {"abnormalFileIDs": abnormal}


@endpoint("/api/v1/file/recover/by_path")
async def recover_by_path(request: Request, params: Params, user: User) -> None:
    ctx = context(request)
    ids = file_ids(params, "fileIDs", "fileIds")
    parent = params.integer("parentFileID", "parentFileId", minimum=0, maximum=ID_MAX)
    await disk.recover_to(ctx, user, ids, parent)


@endpoint("/api/v1/file/delete")
async def delete(request: Request, params: Params, user: User) -> None:
    await disk.delete(context(request), user, file_ids(params, "fileIDs", "fileIds"))


@endpoint("/api/v1/user/info")
async def user_info(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    info = await disk.account(ctx, user)
    created = format_api_time(user.created_at, ctx.settings.timezone)
    limit = info.traffic_limit
    return {
        "uid": user.id,
        "nickname": user.name,
        "headImage": "",
        "passport": "",
        "mail": "",
        "spaceUsed": info.space_used,
        "spacePermanent": info.space_total,
        "spaceTemp": 0,
        "spaceTempExpr": 0,
        "vip": user.vip,
        # Self-use download traffic left today; VIP traffic is unlimited.
        "directTraffic": max(0, limit - info.traffic_used) if limit is not None else UNLIMITED,
        "isHideUID": False,
        "httpsCount": 0,
        "vipInfo": (
            [{"vipLevel": 1, "vipLabel": "VIP", "startTime": created, "endTime": VIP_END}]
            if user.vip
            else None
        ),
        "developerInfo": {"startTime": created, "endTime": VIP_END},
        "downloadTrafficUsed": info.traffic_used,
        "downloadTrafficLimit": limit if limit is not None else -1,
    }


routes = [
    mkdir,
    list_v2,
    list_v1,
    detail,
    infos,
    move,
    rename,
    rename_many,
    trash,
    recover,
    recover_by_path,
    delete,
    user_info,
]
