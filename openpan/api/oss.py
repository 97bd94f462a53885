"""Image-bed (图床) endpoints: ``/upload/v1/oss/file/*`` and ``/api/v1/oss/file/*``.

IDs here are opaque strings; the root directory is ``""`` and the last page is ``"-1"``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from openpan.api import upload_steps
from openpan.api.params import Params
from openpan.api.routing import context, endpoint
from openpan.clock import format_api_time, from_timestamp
from openpan.db.models import SPACE_OSS, File, User
from openpan.errors import FieldError
from openpan.services import links, oss, uploads
from openpan.services.context import Context
from openpan.services.names import check_image_name

ID_LEN = 64  # longer than any ID openpan hands out; longer input is refused, not looked up


def file_item(
    ctx: Context, user: User, file: File, parent_oss_id: str, parent_name: str
) -> dict[str, Any]:
    """One entry as list and detail show it, with every field of the real service."""
    tz = ctx.settings.timezone
    return {
        "fileId": file.oss_id,
        "filename": file.name,
        "parentFileId": parent_oss_id,
        "type": 1 if file.is_dir else 0,
        "etag": file.etag,
        "size": file.size,
        "status": file.status,
        "s3KeyFlag": "" if file.is_dir else f"{user.id}-0",
        "storageNode": "" if file.is_dir else "local",
        "createAt": format_api_time(file.created_at, tz),
        "updateAt": format_api_time(file.updated_at, tz),
        "downloadURL": links.download_url(ctx.settings, file),
        "ossIndex": 0,
        "totalTraffic": file.total_traffic,
        "parentFilename": parent_name,
        "extension": file.ext,
        "userSelfURL": links.user_self_url(ctx.settings, user, file),
    }


def _check_type(params: Params) -> None:
    # Documented as required and fixed at 1; real clients often leave it out.
    if params.has("type"):
        params.integer("type", minimum=1, maximum=1)


@endpoint("/upload/v1/oss/file/mkdir")
async def mkdir(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    names = params.strings("name", max_items=100, max_len=1024)
    parent = params.string("parentID", "parentFileID", required=False, max_len=ID_LEN)
    _check_type(params)
    created = await oss.mkdir(ctx, user, parent, names)
    return {"list": [{"filename": d.name, "dirID": d.oss_id} for d in created]}


@endpoint("/upload/v1/oss/file/create")
async def create(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    parent_oss_id = params.string("parentFileID", "parentID", required=False, max_len=ID_LEN)
    name = check_image_name("filename", params.string("filename", max_len=1024))
    etag = uploads.check_etag(params.string("etag", max_len=64))
    size = params.integer("size", minimum=1, maximum=ctx.settings.oss_max_file_size)
    _check_type(params)
    created = await oss.create_upload(ctx, user, parent_oss_id, name, etag, size)
    if created.file is not None:
        return {
            "fileID": created.file.oss_id,
            "reuse": True,
            "preuploadID": "",
            "sliceSize": created.slice_size,
        }
    assert created.upload is not None
    return {
        "fileID": "",
        "reuse": False,
        "preuploadID": created.upload.id,
        "sliceSize": created.slice_size,
    }


@endpoint("/api/v1/oss/file/list")
async def file_list(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    parent = params.string("parentFileId", "parentFileID", required=False, max_len=ID_LEN)
    limit = params.integer("limit", required=False, default=100, minimum=1, maximum=100)
    start = params.integer("startTime", required=False, default=-1, minimum=0, maximum=2**40)
    end = params.integer("endTime", required=False, default=-1, minimum=0, maximum=2**40)
    if start >= 0 and end >= 0 and end < start:
        raise FieldError("endTime", "不能早于startTime (must not be before startTime)")
    last = params.string("lastFileId", "lastFileID", required=False, max_len=ID_LEN)
    _check_type(params)
    page = await oss.list_dir(
        ctx,
        user,
        parent,
        limit,
        last,
        from_timestamp(start) if start >= 0 else None,
        from_timestamp(end) if end >= 0 else None,
    )
    return {
        "lastFileId": page.last_file_id,
        "fileList": [
            file_item(ctx, user, f, parent, page.parent_names.get(f.parent_id, ""))
            for f in page.files
        ],
    }


@endpoint("/api/v1/oss/file/detail")
async def file_detail(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    file_id = params.string("fileID", max_len=ID_LEN, allow_empty=False)
    entry, parent_id, parent_name = await oss.detail(ctx, user, file_id)
    return file_item(ctx, user, entry, parent_id, parent_name)


@endpoint("/openpan/v1/oss/file/image")
async def file_image(request: Request, params: Params, user: User) -> dict[str, Any]:
    """openpan's own (not a 123pan endpoint, whose answers stay as documented): an image's
    size and frames, for galleries. ``format`` is "" (and the sizes 0) for bytes that are no
    image libvips reads, such as SVG."""
    ctx = context(request)
    file_id = params.string("fileID", max_len=ID_LEN, allow_empty=False)
    entry, source = await oss.image_info(ctx, user, file_id)
    return {
        "fileID": entry.oss_id,
        "format": source.format if source else "",
        "width": source.width if source else 0,
        "height": source.height if source else 0,
        "frames": source.pages if source else 0,
    }


@endpoint("/api/v1/oss/file/move")
async def file_move(request: Request, params: Params, user: User) -> None:
    ctx = context(request)
    file_ids = params.strings("fileIDs", max_items=100, max_len=ID_LEN)
    target = params.string("toParentFileID", "parentFileID", required=False, max_len=ID_LEN)
    await oss.move(ctx, user, file_ids, target)


@endpoint("/api/v1/oss/file/delete")
async def file_delete(request: Request, params: Params, user: User) -> None:
    ctx = context(request)
    file_ids = params.strings("fileIDs", max_items=100, max_len=ID_LEN)
    await oss.delete(ctx, user, file_ids)


def _file_id(file: File | None) -> str:
    return (file.oss_id or "") if file else ""


routes = [
    mkdir,
    create,
    *upload_steps.step_routes("/upload/v1/oss/file", SPACE_OSS, _file_id),
    file_list,
    file_detail,
    file_image,
    file_move,
    file_delete,
]
