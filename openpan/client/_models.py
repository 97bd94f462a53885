"""Typed answers of the 123pan open-platform API, as the real service and openpan send them.

Field names are the snake_case of the wire names (``fileId`` → ``file_id``); the wire names
are accepted too. Reading is lenient (numbers as strings and back, missing optional fields,
``null`` lists) because clients of the real service meet all of these; unknown fields are
ignored. Image-bed IDs are strings (root ``""``), cloud-disk IDs are integers (root ``0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

Space = Literal["oss", "disk"]
"""``"oss"``: the image bed (图床); ``"disk"``: the cloud disk (云盘)."""

ID = TypeVar("ID", str, int)


class Model(BaseModel):
    """Base of every answer model: immutable, lenient, unknown fields ignored."""

    model_config = ConfigDict(
        populate_by_name=True, extra="ignore", frozen=True, coerce_numbers_to_str=True
    )


def _alias(*names: str) -> Any:
    return Field(validation_alias=AliasChoices(*names))


def _list_or_empty(value: Any) -> Any:
    return [] if value is None else value


class ImageInfo(Model):
    """openpan's ``/openpan/v1/oss/file/image``: an image's size as shown (turned by its EXIF
    orientation) and frames; ``format`` is "" and the rest 0 for no raster image (SVG)."""

    file_id: str = _alias("fileID", "fileId", "file_id")
    format: str = ""
    width: int = 0
    height: int = 0
    frames: int = 0


class AccessToken(Model):
    """``/api/v1/access_token``: a bearer token and when it stops working."""

    access_token: str = Field(alias="accessToken")
    expired_at: datetime = Field(alias="expiredAt")


# Image bed ----------------------------------------------------------------------------------


class OssFile(Model):
    """An image or directory of the image bed (list and detail)."""

    file_id: str = _alias("fileId", "fileID", "file_id")
    filename: str
    parent_file_id: str = Field("", validation_alias=AliasChoices("parentFileId", "parentFileID"))
    type: int = 0
    etag: str = ""
    size: int = 0
    status: int = 0
    create_at: str = Field("", alias="createAt")
    update_at: str = Field("", alias="updateAt")
    download_url: str = Field("", alias="downloadURL")
    user_self_url: str = Field("", alias="userSelfURL")
    total_traffic: int = Field(0, alias="totalTraffic")
    parent_filename: str = Field("", alias="parentFilename")
    extension: str = ""
    s3_key_flag: str = Field("", alias="s3KeyFlag")
    storage_node: str = Field("", alias="storageNode")
    oss_index: int = Field(0, alias="ossIndex")

    @property
    def is_dir(self) -> bool:
        return self.type == 1

    @property
    def id(self) -> str:
        return self.file_id

    @property
    def link(self) -> str:
        """The public direct link (``downloadURL``); empty for a directory."""
        return self.download_url


class OssPage(Model):
    """One page of ``/api/v1/oss/file/list``; ``last_file_id == "-1"`` on the last page."""

    last_file_id: str = Field("-1", alias="lastFileId")
    files: list[OssFile] = Field(default_factory=list, alias="fileList")

    _empty = field_validator("files", mode="before")(_list_or_empty)

    @property
    def is_last(self) -> bool:
        return self.last_file_id in ("-1", "")


class OssDir(Model):
    """A directory made by ``/upload/v1/oss/file/mkdir``."""

    filename: str
    dir_id: str = _alias("dirID", "dirId")


# Cloud disk ---------------------------------------------------------------------------------


class DiskFile(Model):
    """A file or directory of the cloud disk (list v1/v2, detail, infos)."""

    file_id: int = _alias("fileId", "fileID", "file_id")
    filename: str
    parent_file_id: int = Field(0, validation_alias=AliasChoices("parentFileId", "parentFileID"))
    type: int = 0
    size: int = 0
    etag: str = ""
    status: int = 0
    category: int = 0
    trashed: bool = False
    create_at: str = Field("", alias="createAt")
    update_at: str = Field("", alias="updateAt")
    punish_flag: int = Field(0, alias="punishFlag")
    s3_key_flag: str = Field("", alias="s3KeyFlag")
    storage_node: str = Field("", alias="storageNode")
    parent_name: str = Field("", alias="parentName")
    content_type: str = Field("", alias="contentType")

    @property
    def is_dir(self) -> bool:
        return self.type == 1

    @property
    def id(self) -> int:
        return self.file_id


class DiskPage(Model):
    """One page of ``/api/v2/file/list``; ``last_file_id == -1`` on the last page."""

    last_file_id: int = Field(-1, alias="lastFileId")
    files: list[DiskFile] = Field(default_factory=list, alias="fileList")

    _empty = field_validator("files", mode="before")(_list_or_empty)

    @property
    def is_last(self) -> bool:
        return self.last_file_id == -1


class DiskPageV1(Model):
    """One page of the older ``/api/v1/file/list`` (page numbers and a total)."""

    total: int = 0
    files: list[DiskFile] = Field(default_factory=list, alias="fileList")

    _empty = field_validator("files", mode="before")(_list_or_empty)


class RenameSuccess(Model):
    file_id: int = _alias("fileID", "fileId")
    update_at: str = Field("", alias="updateAt")


class RenameFailure(Model):
    file_id: int = _alias("fileID", "fileId")
    message: str = ""


class RenameResult(Model):
    """``/api/v1/file/rename``: which renames worked (the real service may answer ``null``)."""

    success_list: list[RenameSuccess] = Field(default_factory=list, alias="successList")
    fail_list: list[RenameFailure] = Field(default_factory=list, alias="failList")

    _empty = field_validator("success_list", "fail_list", mode="before")(_list_or_empty)


class VipInfo(Model):
    vip_level: int = Field(0, alias="vipLevel")
    vip_label: str = Field("", alias="vipLabel")
    start_time: str = Field("", alias="startTime")
    end_time: str = Field("", alias="endTime")


class DeveloperInfo(Model):
    start_time: str = Field("", alias="startTime")
    end_time: str = Field("", alias="endTime")


class UserInfo(Model):
    """``/api/v1/user/info``."""

    uid: int
    nickname: str = ""
    head_image: str = Field("", alias="headImage")
    passport: str = ""
    mail: str = ""
    space_used: int = Field(0, alias="spaceUsed")
    space_permanent: int = Field(0, alias="spacePermanent")
    space_temp: int = Field(0, alias="spaceTemp")
    space_temp_expr: str = Field("", alias="spaceTempExpr")
    vip: bool = False
    direct_traffic: int = Field(0, alias="directTraffic")
    is_hide_uid: bool = Field(False, alias="isHideUID")
    https_count: int = Field(0, alias="httpsCount")
    vip_info: list[VipInfo] = Field(default_factory=list, alias="vipInfo")
    developer_info: DeveloperInfo | None = Field(None, alias="developerInfo")

    _empty = field_validator("vip_info", mode="before")(_list_or_empty)


class DownloadInfo(Model):
    """``/api/v1/file/download_info``: a temporary download URL."""

    download_url: str = Field(alias="downloadUrl")


# Uploads (both spaces; ``ID`` is ``str`` for the image bed, ``int`` for the cloud disk) ------


class UploadCreated(Model, Generic[ID]):
    """Answer to ``create``: an instant upload (``reuse``) or a session to send slices to."""

    file_id: ID = _alias("fileID", "fileId")
    reuse: bool = False
    preupload_id: str = Field("", alias="preuploadID")
    slice_size: int = Field(0, alias="sliceSize")
    servers: list[str] = Field(default_factory=list)
    """V2 only: upload hosts for slices (any of them)."""

    _empty = field_validator("servers", mode="before")(_list_or_empty)


class UploadURL(Model):
    """Answer to ``get_upload_url``: where to PUT one slice."""

    presigned_url: str = Field(alias="presignedURL")
    is_multipart: bool = Field(False, alias="isMultipart")


class UploadPart(Model):
    """A slice the server holds (``list_upload_parts``)."""

    part_number: int = Field(alias="partNumber")
    size: int
    etag: str


class UploadCompleted(Model, Generic[ID]):
    """Answer to ``upload_complete``: done, or ``is_async`` (poll ``upload_async_result``)."""

    is_async: bool = Field(False, alias="async")
    completed: bool = False
    file_id: ID = _alias("fileID", "fileId")


class UploadResult(Model, Generic[ID]):
    """Answer to ``upload_async_result`` (and V2 ``upload_complete``/``single/create``)."""

    completed: bool = False
    file_id: ID = _alias("fileID", "fileId")


# Offline downloads and copy tasks -----------------------------------------------------------


class OfflineStatus(IntEnum):
    RUNNING = 0
    FAILED = 1
    SUCCEEDED = 2
    RETRYING = 3


class OfflineProgress(Model):
    """``offline/download/process``: percent done (0–100), status and (openpan) the reason."""

    process: float = 0.0
    status: OfflineStatus = OfflineStatus.RUNNING
    # openpan's extra: why it failed, or why it is being retried ("" otherwise or elsewhere).
    fail_reason: str = Field(default="", alias="failReason")
    # openpan's extra: the file a succeeded task made ("" until then, or elsewhere).
    file_id: str = Field(default="", alias="fileID")

    @field_validator("file_id", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        # The cloud disk says "no file" with 0, the image bed with "": both are "" here.
        return "" if value in (0, "0", None) else value

    @property
    def finished(self) -> bool:
        return self.status in (OfflineStatus.SUCCEEDED, OfflineStatus.FAILED)


class CopyStatus(IntEnum):
    RUNNING = 1
    DONE = 2
    FAILED = 3
    WAITING = 4


class CopyProgress(Model):
    """``/api/v1/oss/source/copy/process``: status and, on failure, why."""

    status: CopyStatus
    fail_msg: str = Field("", alias="failMsg")

    @property
    def finished(self) -> bool:
        return self.status in (CopyStatus.DONE, CopyStatus.FAILED)


class CopyFailure(Model):
    """A file a copy task could not copy."""

    file_id: int = _alias("fileId", "fileID")
    filename: str = ""


class CopyFailures(Model):
    """One page of ``/api/v1/oss/source/copy/fail``."""

    total: int = 0
    files: list[CopyFailure] = Field(default_factory=list, alias="list")

    _empty = field_validator("files", mode="before")(_list_or_empty)


# Results of the high-level helpers ----------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """What ``upload`` did for one file.

    ``instant`` is true when no byte had to be sent (the server already had the content, or
    ``existed``: the same file was already in place under that name and nothing was done).
    ``link`` is the direct link for the image bed and, when asked for, a temporary download
    link for the cloud disk.
    """

    file: OssFile | DiskFile
    link: str | None
    instant: bool
    sent_bytes: int
    source: str
    existed: bool = False
    resumed: bool = False


@dataclass(frozen=True)
class UploadFailure:
    """A file ``upload_dir`` could not upload, and why."""

    source: str
    error: Exception


@dataclass(frozen=True)
class DirUpload:
    """What ``upload_dir`` did: files uploaded (or found in place) and files that failed."""

    dir_id: str | int
    files: list[UploadedFile]
    failures: list[UploadFailure]

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class Download:
    """A finished ``download``: where the bytes are and how many came in this run."""

    path: Path
    size: int
    received: int
    resumed: bool
