"""One function per endpoint of the 123pan open-platform API, each building its ``Call``.

Request shapes follow the official documents (JSON bodies for POST, query strings for GET,
``type: 1`` where the image bed wants it); answers are parsed into the models of
``_models.py``. ``Client`` and ``AsyncClient`` expose each of these as a method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from openpan.client._models import (
    CopyFailures,
    CopyProgress,
    DiskFile,
    DiskPage,
    DiskPageV1,
    DownloadInfo,
    ImageInfo,
    OfflineProgress,
    OssDir,
    OssFile,
    OssPage,
    RenameResult,
    UploadCompleted,
    UploadCreated,
    UploadPart,
    UploadResult,
    UploadURL,
    UserInfo,
)
from openpan.client._protocol import Call

M = TypeVar("M", bound=BaseModel)
ID = TypeVar("ID", str, int)


def _model(cls: type[M]) -> Callable[[Any], M]:
    def parse(data: Any) -> M:
        return cls.model_validate({} if data is None else data)

    return parse


def _none(data: Any) -> None:
    return None


def _field(name: str, cast: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse(data: Any) -> Any:
        if not isinstance(data, dict) or name not in data:
            raise ValueError(f"answer without {name}")
        return cast(data[name])

    return parse


def _parts(data: Any) -> list[UploadPart]:
    parts = (data or {}).get("parts") or []
    return [UploadPart.model_validate(p) for p in parts]


def _ids(ids: Sequence[Any]) -> list[Any]:
    if isinstance(ids, str | int):
        return [ids]
    return list(ids)


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


# Image bed (图床) --------------------------------------------------------------------------------


def oss_mkdir(names: str | Sequence[str], parent_id: str = "") -> Call[list[OssDir]]:
    """``POST /upload/v1/oss/file/mkdir``: one directory per name."""
    listed = [names] if isinstance(names, str) else list(names)

    def parse(data: Any) -> list[OssDir]:
        return [OssDir.model_validate(d) for d in (data or {}).get("list") or []]

    return Call(
        "POST",
        "/upload/v1/oss/file/mkdir",
        parse,
        json={"name": listed, "parentID": parent_id, "type": 1},
        idempotent=False,
    )


def oss_create(parent_id: str, filename: str, etag: str, size: int) -> Call[UploadCreated[str]]:
    """``POST /upload/v1/oss/file/create``."""
    return Call(
        "POST",
        "/upload/v1/oss/file/create",
        _model(UploadCreated[str]),
        json={
            "parentFileID": parent_id,
            "filename": filename,
            "etag": etag,
            "size": size,
            "type": 1,
        },
        idempotent=False,
    )


@dataclass(frozen=True)
class UploadSteps(Generic[ID]):
    """The four steps after ``create`` of a space's chunked upload: the same requests under the
    space's prefix, answering IDs of the space's kind (``str`` in the image bed)."""

    prefix: str
    completed: type[UploadCompleted[ID]]
    result: type[UploadResult[ID]]

    def get_upload_url(self, preupload_id: str, slice_no: int) -> Call[UploadURL]:
        """``POST …/get_upload_url``: where to PUT slice ``slice_no`` (from 1)."""
        body = {"preuploadID": preupload_id, "sliceNo": slice_no}
        return Call("POST", f"{self.prefix}/get_upload_url", _model(UploadURL), json=body)

    def list_upload_parts(self, preupload_id: str) -> Call[list[UploadPart]]:
        """``POST …/list_upload_parts``: the slices the server holds."""
        body = {"preuploadID": preupload_id}
        return Call("POST", f"{self.prefix}/list_upload_parts", _parts, json=body)

    def upload_complete(self, preupload_id: str) -> Call[UploadCompleted[ID]]:
        """``POST …/upload_complete``: done, or still being verified (``is_async``)."""
        url, body = f"{self.prefix}/upload_complete", {"preuploadID": preupload_id}
        return Call("POST", url, _model(self.completed), json=body, idempotent=False)

    def upload_async_result(self, preupload_id: str) -> Call[UploadResult[ID]]:
        """``POST …/upload_async_result``: whether verifying has finished."""
        url, body = f"{self.prefix}/upload_async_result", {"preuploadID": preupload_id}
        return Call("POST", url, _model(self.result), json=body)


OSS_STEPS = UploadSteps("/upload/v1/oss/file", UploadCompleted[str], UploadResult[str])
DISK_STEPS = UploadSteps("/upload/v1/file", UploadCompleted[int], UploadResult[int])
oss_get_upload_url = OSS_STEPS.get_upload_url
oss_list_upload_parts = OSS_STEPS.list_upload_parts
oss_upload_complete = OSS_STEPS.upload_complete
oss_upload_async_result = OSS_STEPS.upload_async_result
disk_get_upload_url = DISK_STEPS.get_upload_url
disk_list_upload_parts = DISK_STEPS.list_upload_parts
disk_upload_complete = DISK_STEPS.upload_complete
disk_upload_async_result = DISK_STEPS.upload_async_result


def oss_list(
    parent_id: str = "",
    *,
    limit: int = 100,
    last_file_id: str | None = None,
    start_time: int | None = None,
    end_time: int | None = None,
) -> Call[OssPage]:
    """``POST /api/v1/oss/file/list``: one page (see ``iter_files`` for all)."""
    body = {
        "parentFileId": parent_id,
        "limit": limit,
        "type": 1,
        "lastFileId": last_file_id,
        "startTime": start_time,
        "endTime": end_time,
    }
    return Call("POST", "/api/v1/oss/file/list", _model(OssPage), json=_drop_none(body))


def oss_detail(file_id: str) -> Call[OssFile]:
    """``GET /api/v1/oss/file/detail``."""
    return Call("GET", "/api/v1/oss/file/detail", _model(OssFile), query={"fileID": file_id})


def oss_image_info(file_id: str) -> Call[ImageInfo]:
    """openpan's ``GET /openpan/v1/oss/file/image`` (not on the real service): an image's
    width, height and frames."""
    return Call("GET", "/openpan/v1/oss/file/image", _model(ImageInfo), query={"fileID": file_id})


def oss_move(file_ids: Sequence[str], to_parent_id: str = "") -> Call[None]:
    """``POST /api/v1/oss/file/move`` (at most 100 IDs)."""
    return Call(
        "POST",
        "/api/v1/oss/file/move",
        _none,
        json={"fileIDs": _ids(file_ids), "toParentFileID": to_parent_id},
    )


def oss_delete(file_ids: Sequence[str]) -> Call[None]:
    """``POST /api/v1/oss/file/delete`` (at most 100 IDs; a directory takes its contents)."""
    return Call(
        "POST", "/api/v1/oss/file/delete", _none, json={"fileIDs": _ids(file_ids)}, idempotent=False
    )


def oss_copy(file_ids: Sequence[int], to_parent_id: str = "") -> Call[str]:
    """``POST /api/v1/oss/source/copy``: copy cloud-disk images here; returns the task ID."""
    return Call(
        "POST",
        "/api/v1/oss/source/copy",
        _field("taskID", str),
        json={
            "fileIDs": [str(i) for i in _ids(file_ids)],
            "toParentFileID": to_parent_id,
            "sourceType": "1",
            "type": 1,
        },
        idempotent=False,
    )


def oss_copy_process(task_id: str) -> Call[CopyProgress]:
    """``GET /api/v1/oss/source/copy/process``."""
    return Call(
        "GET", "/api/v1/oss/source/copy/process", _model(CopyProgress), query={"taskID": task_id}
    )


def oss_copy_fail(task_id: str, *, page: int = 1, limit: int = 100) -> Call[CopyFailures]:
    """``GET /api/v1/oss/source/copy/fail``: one page of the files that failed."""
    return Call(
        "GET",
        "/api/v1/oss/source/copy/fail",
        _model(CopyFailures),
        query={"taskID": task_id, "limit": limit, "page": page},
    )


def oss_offline_download(
    url: str,
    *,
    file_name: str | None = None,
    dir_id: str | None = None,
    callback_url: str | None = None,
) -> Call[int]:
    """``POST /api/v1/oss/offline/download``: returns the task ID."""
    body = {
        "url": url,
        "fileName": file_name,
        "businessDirID": dir_id,
        "callBackUrl": callback_url,
        "type": 1,
    }
    return Call(
        "POST",
        "/api/v1/oss/offline/download",
        _field("taskID", int),
        json=_drop_none(body),
        idempotent=False,
    )


def oss_offline_process(task_id: int) -> Call[OfflineProgress]:
    """``GET /api/v1/oss/offline/download/process``."""
    return Call(
        "GET",
        "/api/v1/oss/offline/download/process",
        _model(OfflineProgress),
        query={"taskID": task_id},
    )


# Cloud disk (云盘) -------------------------------------------------------------------------------


def disk_mkdir(name: str, parent_id: int = 0) -> Call[int]:
    """``POST /upload/v1/file/mkdir``: returns the new directory's ID."""
    return Call(
        "POST",
        "/upload/v1/file/mkdir",
        _field("dirID", int),
        json={"name": name, "parentID": parent_id},
        idempotent=False,
    )


def _create_body(
    parent_id: int,
    filename: str,
    etag: str,
    size: int,
    duplicate: int | None,
    contain_dir: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "parentFileID": parent_id,
        "filename": filename,
        "etag": etag,
        "size": size,
    }
    if duplicate is not None:
        body["duplicate"] = duplicate
    if contain_dir:
        body["containDir"] = True
    return body


def disk_create(
    parent_id: int,
    filename: str,
    etag: str,
    size: int,
    *,
    duplicate: int | None = None,
    contain_dir: bool = False,
) -> Call[UploadCreated[int]]:
    """``POST /upload/v1/file/create``."""
    return Call(
        "POST",
        "/upload/v1/file/create",
        _model(UploadCreated[int]),
        json=_create_body(parent_id, filename, etag, size, duplicate, contain_dir),
        idempotent=False,
    )


def disk_create_v2(
    parent_id: int,
    filename: str,
    etag: str,
    size: int,
    *,
    duplicate: int | None = None,
    contain_dir: bool = False,
) -> Call[UploadCreated[int]]:
    """``POST /upload/v2/file/create`` (``servers`` names the hosts for slices)."""
    return Call(
        "POST",
        "/upload/v2/file/create",
        _model(UploadCreated[int]),
        json=_create_body(parent_id, filename, etag, size, duplicate, contain_dir),
        idempotent=False,
    )


def disk_upload_slice_v2(
    server: str, preupload_id: str, slice_no: int, slice_md5: str, data: bytes
) -> Call[None]:
    """``POST {server}/upload/v2/file/slice`` (multipart)."""
    return Call(
        "POST",
        "/upload/v2/file/slice",
        _none,
        form={"preuploadID": preupload_id, "sliceNo": str(slice_no), "sliceMD5": slice_md5},
        files={"slice": (f"slice{slice_no}", data, "application/octet-stream")},
        server=server,
        idempotent=False,
    )


def disk_upload_complete_v2(preupload_id: str) -> Call[UploadResult[int]]:
    """``POST /upload/v2/file/upload_complete`` (``StillVerifyingError`` while checking)."""
    return Call(
        "POST",
        "/upload/v2/file/upload_complete",
        _model(UploadResult[int]),
        json={"preuploadID": preupload_id},
        idempotent=False,
    )


def disk_upload_domain_v2() -> Call[list[str]]:
    """``GET /upload/v2/file/domain``: hosts for one-step uploads."""

    def parse(data: Any) -> list[str]:
        return [str(d) for d in data or []]

    return Call("GET", "/upload/v2/file/domain", parse)


def disk_upload_single_v2(
    server: str,
    parent_id: int,
    filename: str,
    etag: str,
    data: bytes,
    *,
    duplicate: int | None = None,
    contain_dir: bool = False,
) -> Call[UploadResult[int]]:
    """``POST {server}/upload/v2/file/single/create``: a small file in one request."""
    form = {
        "parentFileID": str(parent_id),
        "filename": filename,
        "etag": etag,
        "size": str(len(data)),
    }
    if duplicate is not None:
        form["duplicate"] = str(duplicate)
    if contain_dir:
        form["containDir"] = "true"
    return Call(
        "POST",
        "/upload/v2/file/single/create",
        _model(UploadResult[int]),
        form=form,
        files={"file": (filename.rsplit("/", 1)[-1], data, "application/octet-stream")},
        server=server,
        idempotent=False,
    )


def disk_list(
    parent_id: int = 0,
    *,
    limit: int = 100,
    last_file_id: int | None = None,
    search_data: str | None = None,
    search_mode: int | None = None,
) -> Call[DiskPage]:
    """``GET /api/v2/file/list``: one page, trashed files included (see ``iter_files``)."""
    query = {
        "parentFileId": parent_id,
        "limit": limit,
        "lastFileId": last_file_id,
        "searchData": search_data,
        "searchMode": search_mode,
    }
    return Call("GET", "/api/v2/file/list", _model(DiskPage), query=_drop_none(query))


def disk_list_v1(
    parent_id: int = 0,
    *,
    page: int = 1,
    limit: int = 100,
    order_by: str = "file_id",
    order_direction: str = "asc",
    trashed: bool | None = None,
    search_data: str | None = None,
) -> Call[DiskPageV1]:
    """``GET /api/v1/file/list`` (the older, page-numbered listing)."""
    query: dict[str, Any] = {
        "parentFileId": parent_id,
        "page": page,
        "limit": limit,
        "orderBy": order_by,
        "orderDirection": order_direction,
        "searchData": search_data,
    }
    if trashed is not None:
        query["trashed"] = "true" if trashed else "false"
    return Call("GET", "/api/v1/file/list", _model(DiskPageV1), query=_drop_none(query))


def disk_detail(file_id: int) -> Call[DiskFile]:
    """``GET /api/v1/file/detail``."""
    return Call("GET", "/api/v1/file/detail", _model(DiskFile), query={"fileID": file_id})


def disk_infos(file_ids: Sequence[int]) -> Call[list[DiskFile]]:
    """``POST /api/v1/file/infos``."""

    def parse(data: Any) -> list[DiskFile]:
        data = data or {}
        items = data.get("fileList") or data.get("list") or []
        return [DiskFile.model_validate(d) for d in items]

    return Call("POST", "/api/v1/file/infos", parse, json={"fileIds": _ids(file_ids)})


def disk_move(file_ids: Sequence[int], to_parent_id: int = 0) -> Call[None]:
    """``POST /api/v1/file/move`` (at most 100 IDs)."""
    return Call(
        "POST",
        "/api/v1/file/move",
        _none,
        json={"fileIDs": _ids(file_ids), "toParentFileID": to_parent_id},
    )


def disk_rename(file_id: int, name: str) -> Call[None]:
    """``PUT /api/v1/file/name``."""
    return Call("PUT", "/api/v1/file/name", _none, json={"fileId": file_id, "fileName": name})


def disk_rename_batch(renames: Mapping[int, str]) -> Call[RenameResult]:
    """``POST /api/v1/file/rename``: ``{file_id: new_name}``, at most 30."""
    return Call(
        "POST",
        "/api/v1/file/rename",
        _model(RenameResult),
        json={"renameList": [f"{file_id}|{name}" for file_id, name in renames.items()]},
    )


def disk_trash(file_ids: Sequence[int]) -> Call[None]:
    """``POST /api/v1/file/trash``: move to the recycle bin."""
    return Call("POST", "/api/v1/file/trash", _none, json={"fileIDs": _ids(file_ids)})


def disk_recover(file_ids: Sequence[int]) -> Call[list[int]]:
    """``POST /api/v1/file/recover``: returns the IDs whose old directory is gone."""

    def parse(data: Any) -> list[int]:
        return [int(i) for i in (data or {}).get("abnormalFileIDs") or []]

    return Call("POST", "/api/v1/file/recover", parse, json={"fileIDs": _ids(file_ids)})


def disk_recover_by_path(file_ids: Sequence[int], parent_id: int) -> Call[None]:
    """``POST /api/v1/file/recover/by_path``."""
    return Call(
        "POST",
        "/api/v1/file/recover/by_path",
        _none,
        json={"fileIDs": _ids(file_ids), "parentFileID": parent_id},
    )


def disk_delete(file_ids: Sequence[int]) -> Call[None]:
    """``POST /api/v1/file/delete``: delete for good (files must be in the trash)."""
    return Call(
        "POST", "/api/v1/file/delete", _none, json={"fileIDs": _ids(file_ids)}, idempotent=False
    )


def download_info(file_id: int) -> Call[DownloadInfo]:
    """``GET /api/v1/file/download_info``: a temporary download URL."""
    return Call(
        "GET", "/api/v1/file/download_info", _model(DownloadInfo), query={"fileId": file_id}
    )


def user_info() -> Call[UserInfo]:
    """``GET /api/v1/user/info``."""
    return Call("GET", "/api/v1/user/info", _model(UserInfo))


def offline_download(
    url: str,
    *,
    file_name: str | None = None,
    dir_id: int | None = None,
    callback_url: str | None = None,
) -> Call[int]:
    """``POST /api/v1/offline/download``: returns the task ID."""
    body = {"url": url, "fileName": file_name, "dirID": dir_id, "callBackUrl": callback_url}
    return Call(
        "POST",
        "/api/v1/offline/download",
        _field("taskID", int),
        json=_drop_none(body),
        idempotent=False,
    )


def offline_process(task_id: int) -> Call[OfflineProgress]:
    """``GET /api/v1/offline/download/process``."""
    return Call(
        "GET",
        "/api/v1/offline/download/process",
        _model(OfflineProgress),
        query={"taskID": task_id},
    )
