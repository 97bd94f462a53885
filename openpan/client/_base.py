"""What ``Client`` and ``AsyncClient`` share: configuration, credentials, and every method
but those that perform effects. Endpoints and helpers are declared here once, as builders of
calls and flows bound through the descriptors of ``_shell``; the two subclasses differ only in
how they perform effects (``_send``, ``_drive``, ``_iterate``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

import httpx
import platformdirs

from openpan.client import _api, _download, _tree, _upload
from openpan.client._auth import Credentials
from openpan.client._exceptions import ClientError
from openpan.client._handles import AsyncCopyTask, AsyncOfflineTask, CopyTask, OfflineTask
from openpan.client._models import (
    DirUpload,
    DiskFile,
    Download,
    OssFile,
    Space,
    UploadedFile,
    UploadFailure,
)
from openpan.client._protocol import Flow, RetryPolicy, SlotPool, call
from openpan.client._shell import Pages, endpoint, flow, listing, task

DEFAULT_TIMEOUT = 60.0
StrPath = str | os.PathLike[str]
TransportT = TypeVar("TransportT")


def default_state_dir() -> Path:
    """Where unfinished uploads are remembered (per user, e.g. ``~/.local/state/openpan``)."""
    return platformdirs.user_state_path("openpan") / "uploads"


class BaseClient(Generic[TransportT]):
    """Configuration and flows shared by the blocking and the asyncio client; ``TransportT``
    is the kind of httpx transport each takes."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        access_token: str | None = None,
        token_cache: StrPath | None = None,
        transport: TransportT | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 3,
        upload_state_dir: StrPath | None = None,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._credentials = Credentials(
            self.base_url, (client_id, client_secret), access_token, token_cache
        )
        self._policy = RetryPolicy(retries=max(0, retries))
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        state_dir = Path(upload_state_dir) if upload_state_dir else default_state_dir()
        self._states = _upload.UploadStates(state_dir)
        self._open(transport)

    def _open(self, transport: TransportT | None) -> None:
        """Make the connection pool (over ``transport`` if given) and the locks."""
        raise NotImplementedError

    @property
    def client_id(self) -> str | None:
        return self._credentials.client_id

    @property
    def token_expires_at(self) -> datetime | None:
        """When the token in use expires (``None`` before the first call, or when unknown)."""
        return self._credentials.expires_at

    # High-level helpers: flows with the public signatures ------------------------------------

    def _settings(
        self,
        concurrency: int,
        resume: bool,
        link: bool,
        progress: Callable[[int], None] | None,
    ) -> _upload.Settings:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        return _upload.Settings(
            base_url=self.base_url,
            policy=self._policy,
            states=self._states if resume else None,
            concurrency=concurrency,
            link=link,
            progress=progress,
            slots=SlotPool(concurrency),
        )

    def _upload_flow(
        self,
        source: _upload.Source,
        dest: str | int | None = None,
        *,
        space: Space = "oss",
        name: str | None = None,
        concurrency: int = 4,
        duplicate: int | None = None,
        if_exists: _upload.IfExists = "error",
        resume: bool = True,
        link: bool = True,
        protocol: _upload.Protocol = "v1",
        progress: Callable[[int], None] | None = None,
    ) -> Flow[UploadedFile]:
        """Upload a file (a path or a binary stream) into directory ``dest``.

        ``dest`` is a directory ID or an absolute path (``"/photos/2024"``, made if missing);
        ``None`` is the root. The md5 is computed once while reading; content the server
        already holds is not sent again. Slices go ``concurrency`` at a time (memory stays
        below ``concurrency`` × slice size), failed slices are re-sent, and an interrupted
        upload of a path resumes where it stopped when run again (``resume``).

        A file of the same name already there: ``if_exists="error"`` leaves it to the server
        (an error, or for the cloud disk ``duplicate`` 1 keeps both, 2 overwrites), "skip"
        keeps an identical file and refuses a different one, "overwrite" replaces it.
        ``progress`` is called with the bytes each finished slice adds. Returns the file with
        its link (the direct link; for the cloud disk a download link when ``link``).
        """
        settings = self._settings(concurrency, resume, link, progress)
        space = _tree.check_space(space)
        if space == "oss" and protocol != "v1":
            raise ValueError("the image bed has one upload protocol: v1")
        parent = yield from _tree.resolve_dir(space, dest, create=True)
        target = _upload.Target(space, parent, name or "", duplicate, protocol)
        return (yield from _upload.upload(source, target, settings, name, if_exists))

    def _upload_dir_flow(
        self,
        directory: StrPath,
        dest: str | int | None = None,
        *,
        space: Space = "oss",
        concurrency: int = 4,
        if_exists: _upload.IfExists = "skip",
        resume: bool = True,
        link: bool = False,
        protocol: _upload.Protocol = "v1",
        progress: Callable[[str, int], None] | None = None,
        on_file: Callable[[UploadedFile | UploadFailure], None] | None = None,
    ) -> Flow[DirUpload]:
        """Upload a directory tree into ``dest``, recreating its directories.

        Files already there with the same name and content are left alone (``existed``);
        anything else is uploaded, instantly when the server has the bytes, so running it
        again is cheap. A name taken by other content is a failure unless ``if_exists`` is
        "overwrite".
        ``progress(path, nbytes)`` reports bytes per file; ``on_file`` each finished file.
        A file that fails does not stop the others: see ``DirUpload.failures``.
        """
        settings = self._settings(concurrency, resume, link, None)
        space = _tree.check_space(space)
        parent = yield from _tree.resolve_dir(space, dest, create=True)
        return (
            yield from _upload.upload_dir(
                Path(directory),
                parent,
                space,
                settings,
                if_exists=if_exists,
                protocol=protocol,
                progress=progress,
                on_file=on_file,
            )
        )

    def _download_flow(
        self,
        file: str | int,
        path: StrPath = ".",
        *,
        space: Space = "oss",
        resume: bool = True,
        verify: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> Flow[Download]:
        """Download a file (ID or absolute path) to ``path`` (a directory keeps its name).

        Cloud-disk files come through ``download_info``; image-bed files through their direct
        link. Bytes go to ``<name>.part`` first; an interrupted download continues with a
        Range request when run again. The result is checked against the file's size and md5.
        """
        space = _tree.check_space(space)
        file_id: str | int
        if _tree.is_path(file):
            entry = yield from _tree.resolve(space, file)
            if entry is None:
                raise ClientError("the root is a directory")
            file_id = entry.file_id
        else:
            file_id = _tree.as_id(space, file)
        return (
            yield from _download.download(
                space,
                file_id,
                Path(path),
                policy=self._policy,
                resume=resume,
                verify=verify,
                progress=progress,
            )
        )

    def _iter_files_pages(
        self,
        directory: str | int | None = None,
        *,
        space: Space = "oss",
        include_trashed: bool = False,
    ) -> Pages[OssFile | DiskFile]:
        """Every entry of a directory (ID or absolute path), paging through ``lastFileId``."""
        return _tree.Pager(space, directory, include_trashed)

    def _resolve_flow(
        self, ref: str | int, *, space: Space = "oss"
    ) -> Flow[OssFile | DiskFile | None]:
        """The entry an ID or absolute path names (``None`` for the root)."""
        return _tree.resolve(_tree.check_space(space), ref)

    def _makedirs_flow(
        self, path: str, *, space: Space = "oss", parent: str | int | None = None
    ) -> Flow[str | int]:
        """The ID of directory ``path`` (``"/a/b"``, or ``"a/b"`` under directory ``parent``),
        making every part that is missing."""
        space = _tree.check_space(space)
        if parent is None and not _tree.is_path(path):
            raise ValueError(f"give an absolute path like '/a/b' (or a parent), not {path!r}")
        node = yield from _tree.resolve_dir(space, parent)
        for name in _tree.split_path(path):
            node = yield from _tree.ensure_dir(space, node, name)
        return node

    def _offline_flow(
        self,
        url: str,
        *,
        space: Space = "oss",
        dest: str | int | None = None,
        name: str | None = None,
        callback_url: str | None = None,
    ) -> Flow[tuple[int, Space]]:
        """Start an offline download of ``url`` into ``dest`` and return its task handle.

        Without ``dest`` the server puts the file in ``来自:离线下载``. The image bed takes
        images only (by extension, 100 MB at most).
        """
        space = _tree.check_space(space)
        # No directory means the server's default ("来自:离线下载"), which is not the root.
        dir_id = None if dest is None else (yield from _tree.resolve_dir(space, dest, True))
        if space == "oss":
            c = _api.oss_offline_download(
                url,
                file_name=name,
                dir_id=None if dir_id is None else str(dir_id),
                callback_url=callback_url,
            )
        else:
            c = _api.offline_download(
                url,
                file_name=name,
                dir_id=None if dir_id is None else int(dir_id),
                callback_url=callback_url,
            )
        return (yield from call(c)), space

    def _copy_flow(self, files: Sequence[int | str], dest: str | None = None) -> Flow[str]:
        """Copy cloud-disk files or directories (IDs or paths) into the image bed directory
        ``dest`` (ID or path, made if missing) and return the copy task's handle."""
        ids: list[int] = []
        for ref in files:
            if _tree.is_path(ref):
                entry = yield from _tree.resolve("disk", ref)
                if entry is None:
                    raise ClientError("the cloud-disk root cannot be copied; name its contents")
                ids.append(int(entry.file_id))
            else:
                ids.append(int(_tree.as_id("disk", ref)))
        parent = yield from _tree.resolve_dir("oss", dest, create=True)
        return (yield from call(_api.oss_copy(ids, str(parent))))

    upload = flow(_upload_flow)
    upload_dir = flow(_upload_dir_flow)
    download = flow(_download_flow)
    iter_files = listing(_iter_files_pages)
    resolve = flow(_resolve_flow)
    makedirs = flow(_makedirs_flow)
    offline = task(_offline_flow, OfflineTask.started, AsyncOfflineTask.started)
    copy = task(_copy_flow, CopyTask, AsyncCopyTask)

    # Endpoints (``access_token`` is the clients' own: it keeps the token it fetches) ---------

    user_info = endpoint(_api.user_info)

    # image bed
    oss_mkdir = endpoint(_api.oss_mkdir)
    oss_create = endpoint(_api.oss_create)
    oss_get_upload_url = endpoint(_api.oss_get_upload_url)
    oss_list_upload_parts = endpoint(_api.oss_list_upload_parts)
    oss_upload_complete = endpoint(_api.oss_upload_complete)
    oss_upload_async_result = endpoint(_api.oss_upload_async_result)
    oss_list = endpoint(_api.oss_list)
    oss_detail = endpoint(_api.oss_detail)
    oss_image_info = endpoint(_api.oss_image_info)
    oss_move = endpoint(_api.oss_move)
    oss_delete = endpoint(_api.oss_delete)
    oss_copy = endpoint(_api.oss_copy)
    oss_copy_process = endpoint(_api.oss_copy_process)
    oss_copy_fail = endpoint(_api.oss_copy_fail)
    oss_offline_download = endpoint(_api.oss_offline_download)
    oss_offline_process = endpoint(_api.oss_offline_process)

    # cloud disk
    disk_mkdir = endpoint(_api.disk_mkdir)
    disk_create = endpoint(_api.disk_create)
    disk_get_upload_url = endpoint(_api.disk_get_upload_url)
    disk_list_upload_parts = endpoint(_api.disk_list_upload_parts)
    disk_upload_complete = endpoint(_api.disk_upload_complete)
    disk_upload_async_result = endpoint(_api.disk_upload_async_result)
    disk_create_v2 = endpoint(_api.disk_create_v2)
    disk_upload_slice_v2 = endpoint(_api.disk_upload_slice_v2)
    disk_upload_complete_v2 = endpoint(_api.disk_upload_complete_v2)
    disk_upload_domain_v2 = endpoint(_api.disk_upload_domain_v2)
    disk_upload_single_v2 = endpoint(_api.disk_upload_single_v2)
    disk_list = endpoint(_api.disk_list)
    disk_list_v1 = endpoint(_api.disk_list_v1)
    disk_detail = endpoint(_api.disk_detail)
    disk_infos = endpoint(_api.disk_infos)
    disk_move = endpoint(_api.disk_move)
    disk_rename = endpoint(_api.disk_rename)
    disk_rename_batch = endpoint(_api.disk_rename_batch)
    disk_trash = endpoint(_api.disk_trash)
    disk_recover = endpoint(_api.disk_recover)
    disk_recover_by_path = endpoint(_api.disk_recover_by_path)
    disk_delete = endpoint(_api.disk_delete)
    download_info = endpoint(_api.download_info)
    offline_download = endpoint(_api.offline_download)
    offline_process = endpoint(_api.offline_process)
