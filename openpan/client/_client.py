"""``Client``: the blocking client. Parallel work (slices, files) runs in threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any, TypeVar

import httpx

from openpan.client import _api, _tasks, _tree, _upload
from openpan.client._base import DEFAULT_TIMEOUT, BaseClient, StrPath
from openpan.client._exceptions import (
    APIError,
    AuthenticationError,
    ClientError,
    RateLimitError,
)
from openpan.client._models import (
    AccessToken,
    CopyFailure,
    CopyFailures,
    CopyProgress,
    DirUpload,
    DiskFile,
    DiskPage,
    DiskPageV1,
    Download,
    DownloadInfo,
    OfflineProgress,
    OssDir,
    OssFile,
    OssPage,
    RenameResult,
    Space,
    UploadCompleted,
    UploadCreated,
    UploadedFile,
    UploadFailure,
    UploadPart,
    UploadResult,
    UploadURL,
    UserInfo,
)
from openpan.client._protocol import (
    Blocking,
    Call,
    Effect,
    Fetch,
    Flow,
    Parallel,
    Put,
    Sleep,
    build_put,
    build_request,
    check_put,
    fetch_mode,
    never_sent,
    read_answer,
    retry_after,
    transport_error,
)
from openpan.client._upload import CHUNK

T = TypeVar("T")


class _Stopped(Exception):
    """A sibling flow failed or the caller was interrupted: stop at the next effect."""


class _StopFlag:
    def __init__(self, parent: _StopFlag | None = None) -> None:
        self._event = threading.Event()
        self._parent = parent

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.is_set())


class Client(BaseClient):
    """A blocking client of an openpan server or of the real 123pan open platform.

    ::

        with Client(base_url="http://127.0.0.1:8123", client_id="…", client_secret="…") as c:
            print(c.upload("cat.jpg").link)

    Give ``client_id`` and ``client_secret`` (a token is fetched on first use, renewed before
    it expires and once after a 401, and kept in ``token_cache`` if given), or a ready
    ``access_token``. ``transport`` is any ``httpx.BaseTransport`` (tests mount fakes or
    wrappers there); ``retries`` applies to 429 answers, dropped connections and slice PUTs.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        access_token: str | None = None,
        token_cache: StrPath | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 3,
        upload_state_dir: StrPath | None = None,
    ) -> None:
        super().__init__(
            base_url,
            client_id=client_id,
            client_secret=client_secret,
            access_token=access_token,
            token_cache=token_cache,
            timeout=timeout,
            retries=retries,
            upload_state_dir=upload_state_dir,
        )
        self._http = httpx.Client(transport=transport, timeout=self._timeout)
        self._token_lock = threading.Lock()
        self._slots_lock = threading.Lock()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # Performing calls and flows --------------------------------------------------------------

    def token(self) -> str:
        """The access token in use, fetched first if needed."""
        with self._token_lock:
            token = self._credentials.current()
            if token is None:
                try:
                    fetched = self._send(self._credentials.fetch_call())
                except RateLimitError:
                    raise
                except APIError as exc:  # the server refused the clientID or secret
                    raise AuthenticationError(exc.code, exc.message, exc.trace_id) from exc
                token = self._credentials.accept(fetched)
            return token

    def _send(self, c: Call[T]) -> T:
        attempt = 0
        refreshed = False
        while True:
            token = self.token() if c.auth else None
            request = build_request(self._http, self.base_url, c, token)
            response: httpx.Response | None = None
            sent = True
            try:
                response = self._http.send(request)
                return read_answer(c, response)
            except httpx.HTTPError as exc:
                error: ClientError = transport_error(exc, f"{c.method} {c.path}")
                error.__cause__ = exc
                sent = not never_sent(exc)
            except AuthenticationError:
                if token is not None and not refreshed:
                    with self._token_lock:
                        renew = self._credentials.rejected(token)
                    if renew:
                        refreshed = True
                        continue
                raise
            except ClientError as exc:
                error = exc
            delay = self._policy.delay(
                c, error, attempt, sent=sent, retry_after=retry_after(response)
            )
            if delay is None:
                raise error
            time.sleep(delay)
            attempt += 1

    def _put(self, put: Put) -> None:
        try:
            response = self._http.send(build_put(self._http, put))
        except httpx.HTTPError as exc:
            raise transport_error(exc, "slice PUT") from exc
        check_put(response)

    def _fetch(self, fetch: Fetch) -> int:
        headers = {"Range": f"bytes={fetch.offset}-"} if fetch.offset else {}
        try:
            with self._http.stream(
                "GET", fetch.url, headers=headers, follow_redirects=True
            ) as response:
                mode = fetch_mode(response, fetch.offset)
                if mode == "done":
                    return fetch.offset
                if mode == "rewrite" and fetch.offset and fetch.progress:
                    fetch.progress(-fetch.offset)
                written = fetch.offset if mode == "append" else 0
                with open(fetch.path, "ab" if mode == "append" else "wb") as out:
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
                        written += len(chunk)
                        if fetch.progress:
                            fetch.progress(len(chunk))
                return written
        except httpx.HTTPError as exc:
            raise transport_error(exc, "download") from exc

    def _drive(self, flow: Flow[T], stop: _StopFlag | None = None) -> T:
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    effect = flow.throw(error) if error is not None else flow.send(value)
                except StopIteration as done:
                    result: T = done.value
                    return result
                value, error = None, None
                if stop is not None and stop.is_set():
                    error = _Stopped()
                    continue
                try:
                    value = self._perform(effect, stop)
                except (ClientError, OSError) as exc:
                    error = exc
        finally:
            flow.close()

    def _perform(self, effect: Effect, stop: _StopFlag | None) -> Any:
        if isinstance(effect, Call):
            return self._send(effect)
        if isinstance(effect, Put):
            return self._put(effect)
        if isinstance(effect, Fetch):
            return self._fetch(effect)
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        if isinstance(effect, Blocking):
            return effect.fn(*effect.args)
        if isinstance(effect, Parallel):
            return self._parallel(effect, stop)
        raise TypeError(f"unknown effect {effect!r}")

    def _parallel(self, group: Parallel, stop: _StopFlag | None) -> list[Any]:
        flag = _StopFlag(stop)
        slots = group.slots
        if slots is not None:
            with self._slots_lock:
                if slots.semaphore is None:
                    slots.semaphore = threading.BoundedSemaphore(slots.size)

        def run(flow: Flow[Any]) -> Any:
            if slots is None:
                return self._drive(flow, flag)
            with slots.semaphore:
                return self._drive(flow, flag)

        results: dict[int, Any] = {}
        failures: list[BaseException] = []

        def reap(pending: dict[Future[Any], int]) -> None:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                exc = future.exception()
                if exc is None:
                    results[index] = future.result()
                else:
                    failures.append(exc)
                    flag.set()

        with ThreadPoolExecutor(max_workers=group.limit, thread_name_prefix="openpan") as pool:
            pending: dict[Future[Any], int] = {}
            try:
                for index, flow in enumerate(group.flows):
                    if flag.is_set():
                        flow.close()
                        break
                    pending[pool.submit(run, flow)] = index
                    while len(pending) >= group.limit:
                        reap(pending)
                while pending:
                    reap(pending)
            except BaseException:
                flag.set()
                raise
        if failures:
            raise next((f for f in failures if not isinstance(f, _Stopped)), failures[0])
        return [results[i] for i in sorted(results)]

    # High-level helpers ----------------------------------------------------------------------

    def upload(
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
    ) -> UploadedFile:
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
        return self._drive(
            self._upload_flow(source, dest, space, name, duplicate, if_exists, protocol, settings)
        )

    def upload_dir(
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
    ) -> DirUpload:
        """Upload a directory tree into ``dest``, recreating its directories.

        Files already there with the same name and content are left alone (``existed``);
        anything else is uploaded, instantly when the server has the bytes, so running it
        again is cheap. A name taken by other content is a failure unless ``if_exists`` is
        "overwrite".
        ``progress(path, nbytes)`` reports bytes per file; ``on_file`` each finished file.
        A file that fails does not stop the others: see ``DirUpload.failures``.
        """
        settings = self._settings(concurrency, resume, link, None)
        return self._drive(
            self._upload_dir_flow(
                directory, dest, space, if_exists, protocol, settings, progress, on_file
            )
        )

    def download(
        self,
        file: str | int,
        path: StrPath = ".",
        *,
        space: Space = "oss",
        resume: bool = True,
        verify: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> Download:
        """Download a file (ID or absolute path) to ``path`` (a directory keeps its name).

        Cloud-disk files come through ``download_info``; image-bed files through their direct
        link. Bytes go to ``<name>.part`` first; an interrupted download continues with a
        Range request when run again. The result is checked against the file's size and md5.
        """
        return self._drive(self._download_flow(file, path, space, resume, verify, progress))

    def iter_files(
        self,
        directory: str | int | None = None,
        *,
        space: Space = "oss",
        include_trashed: bool = False,
    ) -> Iterator[OssFile | DiskFile]:
        """Every entry of a directory (ID or absolute path), paging through ``lastFileId``."""
        space = _tree.check_space(space)
        parent = self._drive(_tree.resolve_dir(space, directory))
        last: Any = None
        while True:
            page = self._send(_tree.list_page(space, parent, last))
            for entry in page.files:
                if include_trashed or not getattr(entry, "trashed", False):
                    yield entry
            if page.is_last or not page.files:
                return
            last = page.last_file_id

    def resolve(self, ref: str | int, *, space: Space = "oss") -> OssFile | DiskFile | None:
        """The entry an ID or absolute path names (``None`` for the root)."""
        result: OssFile | DiskFile | None = self._drive(self._resolve_flow(ref, space))
        return result

    def makedirs(
        self, path: str, *, space: Space = "oss", parent: str | int | None = None
    ) -> str | int:
        """The ID of directory ``path`` (``"/a/b"``, or ``"a/b"`` under directory ``parent``),
        making every part that is missing."""
        return self._drive(self._makedirs_flow(path, space, parent))

    def offline(
        self,
        url: str,
        *,
        space: Space = "oss",
        dest: str | int | None = None,
        name: str | None = None,
        callback_url: str | None = None,
    ) -> OfflineTask:
        """Start an offline download of ``url`` into ``dest`` and return its task handle.

        Without ``dest`` the server puts the file in ``来自:离线下载``. The image bed takes
        images only (by extension, 100 MB at most).
        """
        task_id = self._drive(self._offline_flow(url, space, dest, name, callback_url))
        return OfflineTask(self, task_id, space)

    def copy(self, files: Sequence[int | str], dest: str | None = None) -> CopyTask:
        """Copy cloud-disk files or directories (IDs or paths) into the image bed directory
        ``dest`` (ID or path, made if missing) and return the copy task's handle."""
        return CopyTask(self, self._drive(self._copy_flow(files, dest)))

    # Endpoints: authentication and account ----------------------------------------------------

    def access_token(self) -> AccessToken:
        """``POST /api/v1/access_token``: a new token for this client's ID and secret."""
        token = self._send(self._credentials.fetch_call())
        with self._token_lock:
            self._credentials.accept(token)
        return token

    def user_info(self) -> UserInfo:
        """``GET /api/v1/user/info``."""
        return self._send(_api.user_info())

    # Endpoints: image bed ----------------------------------------------------------------------

    def oss_mkdir(self, names: str | Sequence[str], parent_id: str = "") -> list[OssDir]:
        """``POST /upload/v1/oss/file/mkdir``: one directory per name."""
        return self._send(_api.oss_mkdir(names, parent_id))

    def oss_create(self, parent_id: str, filename: str, etag: str, size: int) -> UploadCreated[str]:
        """``POST /upload/v1/oss/file/create``."""
        return self._send(_api.oss_create(parent_id, filename, etag, size))

    def oss_get_upload_url(self, preupload_id: str, slice_no: int) -> UploadURL:
        """``POST /upload/v1/oss/file/get_upload_url``."""
        return self._send(_api.oss_get_upload_url(preupload_id, slice_no))

    def oss_list_upload_parts(self, preupload_id: str) -> list[UploadPart]:
        """``POST /upload/v1/oss/file/list_upload_parts``."""
        return self._send(_api.oss_list_upload_parts(preupload_id))

    def oss_upload_complete(self, preupload_id: str) -> UploadCompleted[str]:
        """``POST /upload/v1/oss/file/upload_complete``."""
        return self._send(_api.oss_upload_complete(preupload_id))

    def oss_upload_async_result(self, preupload_id: str) -> UploadResult[str]:
        """``POST /upload/v1/oss/file/upload_async_result``."""
        return self._send(_api.oss_upload_async_result(preupload_id))

    def oss_list(
        self,
        parent_id: str = "",
        *,
        limit: int = 100,
        last_file_id: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> OssPage:
        """``POST /api/v1/oss/file/list``: one page (see ``iter_files`` for all)."""
        return self._send(
            _api.oss_list(
                parent_id,
                limit=limit,
                last_file_id=last_file_id,
                start_time=start_time,
                end_time=end_time,
            )
        )

    def oss_detail(self, file_id: str) -> OssFile:
        """``GET /api/v1/oss/file/detail``."""
        return self._send(_api.oss_detail(file_id))

    def oss_move(self, file_ids: Sequence[str], to_parent_id: str = "") -> None:
        """``POST /api/v1/oss/file/move`` (at most 100 IDs)."""
        self._send(_api.oss_move(file_ids, to_parent_id))

    def oss_delete(self, file_ids: Sequence[str]) -> None:
        """``POST /api/v1/oss/file/delete`` (at most 100 IDs; a directory takes its contents)."""
        self._send(_api.oss_delete(file_ids))

    def oss_copy(self, file_ids: Sequence[int], to_parent_id: str = "") -> str:
        """``POST /api/v1/oss/source/copy``: copy cloud-disk images here; returns the task ID."""
        return self._send(_api.oss_copy(file_ids, to_parent_id))

    def oss_copy_process(self, task_id: str) -> CopyProgress:
        """``GET /api/v1/oss/source/copy/process``."""
        return self._send(_api.oss_copy_process(task_id))

    def oss_copy_fail(self, task_id: str, *, page: int = 1, limit: int = 100) -> CopyFailures:
        """``GET /api/v1/oss/source/copy/fail``: one page of the files that failed."""
        return self._send(_api.oss_copy_fail(task_id, page=page, limit=limit))

    def oss_offline_download(
        self,
        url: str,
        *,
        file_name: str | None = None,
        dir_id: str | None = None,
        callback_url: str | None = None,
    ) -> int:
        """``POST /api/v1/oss/offline/download``: returns the task ID."""
        return self._send(
            _api.oss_offline_download(
                url, file_name=file_name, dir_id=dir_id, callback_url=callback_url
            )
        )

    def oss_offline_process(self, task_id: int) -> OfflineProgress:
        """``GET /api/v1/oss/offline/download/process``."""
        return self._send(_api.oss_offline_process(task_id))

    # Endpoints: cloud disk ---------------------------------------------------------------------

    def disk_mkdir(self, name: str, parent_id: int = 0) -> int:
        """``POST /upload/v1/file/mkdir``: returns the new directory's ID."""
        return self._send(_api.disk_mkdir(name, parent_id))

    def disk_create(
        self,
        parent_id: int,
        filename: str,
        etag: str,
        size: int,
        *,
        duplicate: int | None = None,
        contain_dir: bool = False,
    ) -> UploadCreated[int]:
        """``POST /upload/v1/file/create``."""
        return self._send(
            _api.disk_create(
                parent_id, filename, etag, size, duplicate=duplicate, contain_dir=contain_dir
            )
        )

    def disk_get_upload_url(self, preupload_id: str, slice_no: int) -> UploadURL:
        """``POST /upload/v1/file/get_upload_url``."""
        return self._send(_api.disk_get_upload_url(preupload_id, slice_no))

    def disk_list_upload_parts(self, preupload_id: str) -> list[UploadPart]:
        """``POST /upload/v1/file/list_upload_parts``."""
        return self._send(_api.disk_list_upload_parts(preupload_id))

    def disk_upload_complete(self, preupload_id: str) -> UploadCompleted[int]:
        """``POST /upload/v1/file/upload_complete``."""
        return self._send(_api.disk_upload_complete(preupload_id))

    def disk_upload_async_result(self, preupload_id: str) -> UploadResult[int]:
        """``POST /upload/v1/file/upload_async_result``."""
        return self._send(_api.disk_upload_async_result(preupload_id))

    def disk_create_v2(
        self,
        parent_id: int,
        filename: str,
        etag: str,
        size: int,
        *,
        duplicate: int | None = None,
        contain_dir: bool = False,
    ) -> UploadCreated[int]:
        """``POST /upload/v2/file/create`` (``servers`` names the hosts for slices)."""
        return self._send(
            _api.disk_create_v2(
                parent_id, filename, etag, size, duplicate=duplicate, contain_dir=contain_dir
            )
        )

    def disk_upload_slice_v2(
        self, server: str, preupload_id: str, slice_no: int, slice_md5: str, data: bytes
    ) -> None:
        """``POST {server}/upload/v2/file/slice`` (multipart)."""
        self._send(_api.disk_upload_slice_v2(server, preupload_id, slice_no, slice_md5, data))

    def disk_upload_complete_v2(self, preupload_id: str) -> UploadResult[int]:
        """``POST /upload/v2/file/upload_complete`` (``StillVerifyingError`` while checking)."""
        return self._send(_api.disk_upload_complete_v2(preupload_id))

    def disk_upload_domain_v2(self) -> list[str]:
        """``GET /upload/v2/file/domain``: hosts for one-step uploads."""
        return self._send(_api.disk_upload_domain_v2())

    def disk_upload_single_v2(
        self,
        server: str,
        parent_id: int,
        filename: str,
        etag: str,
        data: bytes,
        *,
        duplicate: int | None = None,
        contain_dir: bool = False,
    ) -> UploadResult[int]:
        """``POST {server}/upload/v2/file/single/create``: a small file in one request."""
        return self._send(
            _api.disk_upload_single_v2(
                server,
                parent_id,
                filename,
                etag,
                data,
                duplicate=duplicate,
                contain_dir=contain_dir,
            )
        )

    def disk_list(
        self,
        parent_id: int = 0,
        *,
        limit: int = 100,
        last_file_id: int | None = None,
        search_data: str | None = None,
        search_mode: int | None = None,
    ) -> DiskPage:
        """``GET /api/v2/file/list``: one page, trashed files included (see ``iter_files``)."""
        return self._send(
            _api.disk_list(
                parent_id,
                limit=limit,
                last_file_id=last_file_id,
                search_data=search_data,
                search_mode=search_mode,
            )
        )

    def disk_list_v1(
        self,
        parent_id: int = 0,
        *,
        page: int = 1,
        limit: int = 100,
        order_by: str = "file_id",
        order_direction: str = "asc",
        trashed: bool | None = None,
        search_data: str | None = None,
    ) -> DiskPageV1:
        """``GET /api/v1/file/list`` (the older, page-numbered listing)."""
        return self._send(
            _api.disk_list_v1(
                parent_id,
                page=page,
                limit=limit,
                order_by=order_by,
                order_direction=order_direction,
                trashed=trashed,
                search_data=search_data,
            )
        )

    def disk_detail(self, file_id: int) -> DiskFile:
        """``GET /api/v1/file/detail``."""
        return self._send(_api.disk_detail(file_id))

    def disk_infos(self, file_ids: Sequence[int]) -> list[DiskFile]:
        """``POST /api/v1/file/infos``."""
        return self._send(_api.disk_infos(file_ids))

    def disk_move(self, file_ids: Sequence[int], to_parent_id: int = 0) -> None:
        """``POST /api/v1/file/move`` (at most 100 IDs)."""
        self._send(_api.disk_move(file_ids, to_parent_id))

    def disk_rename(self, file_id: int, name: str) -> None:
        """``PUT /api/v1/file/name``."""
        self._send(_api.disk_rename(file_id, name))

    def disk_rename_batch(self, renames: Mapping[int, str]) -> RenameResult:
        """``POST /api/v1/file/rename``: ``{file_id: new_name}``, at most 30."""
        return self._send(_api.disk_rename_batch(renames))

    def disk_trash(self, file_ids: Sequence[int]) -> None:
        """``POST /api/v1/file/trash``: move to the recycle bin."""
        self._send(_api.disk_trash(file_ids))

    def disk_recover(self, file_ids: Sequence[int]) -> list[int]:
        """``POST /api/v1/file/recover``: returns the IDs whose old directory is gone."""
        return self._send(_api.disk_recover(file_ids))

    def disk_recover_by_path(self, file_ids: Sequence[int], parent_id: int) -> None:
        """``POST /api/v1/file/recover/by_path``."""
        self._send(_api.disk_recover_by_path(file_ids, parent_id))

    def disk_delete(self, file_ids: Sequence[int]) -> None:
        """``POST /api/v1/file/delete``: delete for good (files must be in the trash)."""
        self._send(_api.disk_delete(file_ids))

    def download_info(self, file_id: int) -> DownloadInfo:
        """``GET /api/v1/file/download_info``: a temporary download URL."""
        return self._send(_api.download_info(file_id))

    def offline_download(
        self,
        url: str,
        *,
        file_name: str | None = None,
        dir_id: int | None = None,
        callback_url: str | None = None,
    ) -> int:
        """``POST /api/v1/offline/download``: returns the task ID."""
        return self._send(
            _api.offline_download(
                url, file_name=file_name, dir_id=dir_id, callback_url=callback_url
            )
        )

    def offline_process(self, task_id: int) -> OfflineProgress:
        """``GET /api/v1/offline/download/process``."""
        return self._send(_api.offline_process(task_id))


class OfflineTask:
    """An offline download (either space) in progress."""

    def __init__(self, client: Client, task_id: int, space: Space) -> None:
        self.client = client
        self.task_id = task_id
        self.space = space

    def __repr__(self) -> str:
        return f"OfflineTask(task_id={self.task_id!r}, space={self.space!r})"

    def progress(self) -> OfflineProgress:
        """The task's progress now."""
        return self.client._send(_tasks.offline_process(self.space, self.task_id))

    def wait(
        self,
        *,
        timeout: float | None = None,
        interval: float = 1.0,
        on_progress: Callable[[OfflineProgress], None] | None = None,
    ) -> OfflineProgress:
        """Block until the download succeeds; ``TaskFailed`` if it fails."""
        return self.client._drive(
            _tasks.wait_offline(
                self.space,
                self.task_id,
                timeout=timeout,
                interval=interval,
                on_progress=on_progress,
            )
        )


class CopyTask:
    """A copy from the cloud disk into the image bed in progress."""

    def __init__(self, client: Client, task_id: str) -> None:
        self.client = client
        self.task_id = task_id

    def __repr__(self) -> str:
        return f"CopyTask(task_id={self.task_id!r})"

    def progress(self) -> CopyProgress:
        """The task's status now."""
        return self.client.oss_copy_process(self.task_id)

    def wait(
        self,
        *,
        timeout: float | None = None,
        interval: float = 1.0,
        on_progress: Callable[[CopyProgress], None] | None = None,
    ) -> CopyProgress:
        """Block until the task is done; ``TaskFailed`` if it fails."""
        return self.client._drive(
            _tasks.wait_copy(
                self.task_id, timeout=timeout, interval=interval, on_progress=on_progress
            )
        )

    def failures(self) -> list[CopyFailure]:
        """Every file the task could not copy."""
        return self.client._drive(_tasks.copy_failures(self.task_id))
