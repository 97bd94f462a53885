"""Upload steps that the image bed and the cloud disk (V1) answer alike; only the space differs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from openpan.api.params import Params
from openpan.api.routing import context, endpoint
from openpan.db.models import File, User
from openpan.services import uploads
from openpan.services.emulation import Emulation


def preupload_id(params: Params) -> str:
    return params.string("preuploadID", max_len=256, allow_empty=False)


async def upload_url(request: Request, params: Params, user: User, space: str) -> dict[str, Any]:
    """``get_upload_url``: the presigned URL of one slice."""
    upload_id = preupload_id(params)
    number = params.integer("sliceNo", minimum=1, maximum=100_000)
    url, several = await uploads.upload_url(context(request), user, upload_id, number, space)
    return {"presignedURL": url, "isMultipart": several}


async def upload_parts(request: Request, params: Params, user: User, space: str) -> dict[str, Any]:
    """``list_upload_parts``: the slices received so far (``partNumber`` is a string)."""
    parts = await uploads.list_parts(context(request), user, preupload_id(params), space)
    return {"parts": [{"partNumber": str(p.number), "size": p.size, "etag": p.md5} for p in parts]}


def step_routes(prefix: str, space: str, file_id: Callable[[File | None], Any]) -> list[Route]:
    """The four steps after ``create`` under ``prefix`` (``/upload/v1/oss/file``): slice URLs,
    slices received, complete and its asynchronous result. ``file_id`` is how the space names
    the finished file (the image bed by its string ID, the cloud disk by its number)."""

    @endpoint(f"{prefix}/get_upload_url")
    async def get_upload_url(request: Request, params: Params, user: User) -> dict[str, Any]:
        return await upload_url(request, params, user, space)

    @endpoint(f"{prefix}/list_upload_parts")
    async def list_upload_parts(request: Request, params: Params, user: User) -> dict[str, Any]:
        return await upload_parts(request, params, user, space)

    @endpoint(f"{prefix}/upload_complete")
    async def upload_complete(request: Request, params: Params, user: User) -> dict[str, Any]:
        ctx = context(request)
        done = await uploads.complete(ctx, user, preupload_id(params), space)
        if ctx.settings.emulator and ctx.part(Emulation).async_uploads:
            # The emulator's "uploadComplete: async": the client's polling path, on demand.
            return {"async": True, "completed": False, "fileID": file_id(None)}
        return {"async": done.is_async, "completed": done.completed, "fileID": file_id(done.file)}

    @endpoint(f"{prefix}/upload_async_result")
    async def upload_async_result(request: Request, params: Params, user: User) -> dict[str, Any]:
        ctx = context(request)
        upload_id = preupload_id(params)
        done = await uploads.result(ctx, user, upload_id, space)
        if ctx.settings.emulator and ctx.part(Emulation).still_verifying(upload_id):
            return {"completed": False, "fileID": file_id(None)}
        return {"completed": done.completed, "fileID": file_id(done.file)}

    return [get_upload_url, list_upload_parts, upload_complete, upload_async_result]
