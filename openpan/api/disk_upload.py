"""Cloud-disk uploads: V1 (``/upload/v1/file/*``, slices PUT to presigned URLs) and V2
(``/upload/v2/file/*``, slices POSTed as forms with the token to the upload server, and the
one-step upload). The upload server V2 hands out is openpan itself (its public URL).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openpan.api import multipart, upload_steps
from openpan.api.disk import dir_id
from openpan.api.params import Params
from openpan.api.routing import ALL_METHODS, admit, answer, context, endpoint
from openpan.db.models import SPACE_DISK, File, User
from openpan.errors import FieldError, StillVerifying
from openpan.services import disk, disk_uploads

FormHandler = Callable[[Request, multipart.Received, User], Awaitable[Any]]


def form_endpoint(
    path: str, file_limits: Callable[[Request], dict[str, int]]
) -> Callable[[FormHandler], Route]:
    """An authenticated endpoint whose body is a multipart form carrying a file, streamed to
    disk (``file_limits`` names the file parts and their most bytes). Files the handler did not
    take over are removed afterwards."""

    def wrap(handler: FormHandler) -> Route:
        async def work(request: Request) -> Any:
            user = await admit(request, path)
            ctx = context(request)
            form = await multipart.receive(request, ctx.temp_files.temp_path, file_limits(request))
            try:
                return await handler(request, form, user)
            finally:
                form.discard()

        async def run(request: Request) -> Response:
            return await answer(request, lambda: work(request))

        return Route(path, run, methods=ALL_METHODS, name=handler.__name__)

    return wrap


def _new_file(params: Params) -> disk_uploads.NewFile:
    """The fields of ``create`` and ``single/create``, read in the documented order."""
    return disk_uploads.NewFile(
        parent_id=dir_id(params, "parentFileID", "parentFileId"),
        filename=params.string("filename", "fileName", max_len=4096),
        etag=params.string("etag", max_len=64),
        size=params.integer("size", minimum=0, maximum=disk.MAX_FILE_SIZE),
        duplicate=params.integer("duplicate", required=False, default=0, minimum=0, maximum=2),
        contain_dir=params.boolean("containDir"),
    )


async def _create(request: Request, params: Params, user: User, version: int) -> dict[str, Any]:
    ctx = context(request)
    created = await disk_uploads.create(ctx, user, _new_file(params), version)
    if created.file is not None:
        answer: dict[str, Any] = {
            "fileID": created.file.id,
            "reuse": True,
            "preuploadID": "",
            "sliceSize": created.slice_size,
        }
    else:
        assert created.upload is not None
        answer = {
            "fileID": 0,
            "reuse": False,
            "preuploadID": created.upload.id,
            "sliceSize": created.slice_size,
        }
    if version == 2:
        answer["servers"] = [ctx.settings.effective_public_url]
    return answer


@endpoint("/upload/v1/file/create")
async def create_v1(request: Request, params: Params, user: User) -> dict[str, Any]:
    return await _create(request, params, user, 1)


@endpoint("/upload/v2/file/create")
async def create_v2(request: Request, params: Params, user: User) -> dict[str, Any]:
    return await _create(request, params, user, 2)


@endpoint("/upload/v2/file/domain")
async def domain(request: Request, params: Params, user: User) -> list[str]:
    return [context(request).settings.effective_public_url]


def _slice_limits(request: Request) -> dict[str, int]:
    return {"slice": context(request).settings.slice_size}


def _received(form: multipart.Received, name: str) -> multipart.ReceivedFile:
    received = form.files.get(name)
    if received is None:
        raise FieldError(name, "不能为空: 需要文件内容 (required: the file part)")
    return received


@form_endpoint("/upload/v2/file/slice", _slice_limits)
async def upload_slice(request: Request, form: multipart.Received, user: User) -> None:
    params = form.params
    upload_id = upload_steps.preupload_id(params)
    number = params.integer("sliceNo", minimum=1, maximum=100_000)
    slice_md5 = params.string("sliceMD5", max_len=64)
    part = _received(form, "slice")
    await disk_uploads.receive_slice(
        context(request), user, upload_id, number, slice_md5, part.path, part.size, part.md5
    )


@endpoint("/upload/v2/file/upload_complete")
async def upload_complete_v2(request: Request, params: Params, user: User) -> dict[str, Any]:
    file = await disk_uploads.complete_v2(context(request), user, upload_steps.preupload_id(params))
    if file is None:
        raise StillVerifying(
            "文件校验中, 请1秒后再次调用此接口 (still verifying; ask again in a second)"
        )
    return {"completed": True, "fileID": file.id}


def _single_limits(request: Request) -> dict[str, int]:
    return {"file": disk_uploads.SINGLE_MAX}


@form_endpoint("/upload/v2/file/single/create", _single_limits)
async def single_create(request: Request, form: multipart.Received, user: User) -> dict[str, Any]:
    params = form.params
    new = _new_file(params)
    if new.size > disk_uploads.SINGLE_MAX:
        raise FieldError("size", f"单步上传最大{disk_uploads.SINGLE_MAX}字节 (at most 1 GB)")
    part = _received(form, "file")
    file = await disk_uploads.single(context(request), user, new, part.path, part.md5, part.size)
    return {"fileID": file.id, "completed": True}


def _file_id(file: File | None) -> int:
    return file.id if file else 0


routes = [
    create_v1,
    *upload_steps.step_routes("/upload/v1/file", SPACE_DISK, _file_id),
    create_v2,
    domain,
    upload_slice,
    upload_complete_v2,
    single_create,
]
