"""What ``Client`` and ``AsyncClient`` share: configuration, credentials and the flows behind
the high-level helpers. The two subclasses differ only in how they perform effects."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import platformdirs

from openpan.client import _api, _download, _tree, _upload
from openpan.client._auth import Credentials
from openpan.client._exceptions import ClientError
from openpan.client._models import (
    DirUpload,
    Download,
    Space,
    UploadedFile,
    UploadFailure,
)
from openpan.client._protocol import Flow, RetryPolicy, SlotPool, call

DEFAULT_TIMEOUT = 60.0
StrPath = str | os.PathLike[str]


def default_state_dir() -> Path:
    """Where unfinished uploads are remembered (per user, e.g. ``~/.local/state/openpan``)."""
    return platformdirs.user_state_path("openpan") / "uploads"


class BaseClient:
    """Configuration and flows shared by the blocking and the asyncio client."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        access_token: str | None = None,
        token_cache: StrPath | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 3,
        upload_state_dir: StrPath | None = None,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._credentials = Credentials(
            self.base_url,
            client_id=client_id,
            client_secret=client_secret,
            access_token=access_token,
            token_cache=token_cache,
        )
        self._policy = RetryPolicy(retries=max(0, retries))
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        state_dir = Path(upload_state_dir) if upload_state_dir else default_state_dir()
        self._states = _upload.UploadStates(state_dir)

    @property
    def client_id(self) -> str | None:
        return self._credentials.client_id

    @property
    def token_expires_at(self) -> datetime | None:
        """When the token in use expires (``None`` before the first call, or when unknown)."""
        return self._credentials.expires_at

    # Flows behind the helpers ----------------------------------------------------------------

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
        dest: str | int | None,
        space: Space,
        name: str | None,
        duplicate: int | None,
        if_exists: _upload.IfExists,
        protocol: _upload.Protocol,
        settings: _upload.Settings,
    ) -> Flow[UploadedFile]:
        space = _tree.check_space(space)
        if space == "oss" and protocol != "v1":
            raise ValueError("the image bed has one upload protocol: v1")
        parent = yield from _tree.resolve_dir(space, dest, create=True)
        target = _upload.Target(space, parent, name or "", duplicate, protocol)
        return (yield from _upload.upload(source, target, settings, name, if_exists))

    def _upload_dir_flow(
        self,
        directory: StrPath,
        dest: str | int | None,
        space: Space,
        if_exists: _upload.IfExists,
        protocol: _upload.Protocol,
        settings: _upload.Settings,
        progress: Callable[[str, int], None] | None,
        on_file: Callable[[UploadedFile | UploadFailure], None] | None,
    ) -> Flow[DirUpload]:
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
        ref: str | int,
        path: StrPath,
        space: Space,
        resume: bool,
        verify: bool,
        progress: Callable[[int], None] | None,
    ) -> Flow[Download]:
        space = _tree.check_space(space)
        file_id: str | int
        if _tree.is_path(ref):
            entry = yield from _tree.resolve(space, ref)
            if entry is None:
                raise ClientError("the root is a directory")
            file_id = entry.file_id
        else:
            file_id = _tree.as_id(space, ref)
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

    def _offline_flow(
        self,
        url: str,
        space: Space,
        dest: str | int | None,
        name: str | None,
        callback_url: str | None,
    ) -> Flow[int]:
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
        return (yield from call(c))

    def _copy_flow(self, file_ids: Sequence[int | str], dest: str | None) -> Flow[str]:
        ids: list[int] = []
        for ref in file_ids:
            if _tree.is_path(ref):
                entry = yield from _tree.resolve("disk", ref)
                if entry is None:
                    raise ClientError("the cloud-disk root cannot be copied; name its contents")
                ids.append(int(entry.file_id))
            else:
                ids.append(int(_tree.as_id("disk", ref)))
        parent = yield from _tree.resolve_dir("oss", dest, create=True)
        return (yield from call(_api.oss_copy(ids, str(parent))))

    def _resolve_flow(self, ref: str | int, space: Space) -> Flow[Any]:
        return (yield from _tree.resolve(_tree.check_space(space), ref))

    def _makedirs_flow(self, path: str, space: Space, parent: str | int | None) -> Flow[str | int]:
        space = _tree.check_space(space)
        if parent is None and not _tree.is_path(path):
            raise ValueError(f"give an absolute path like '/a/b' (or a parent), not {path!r}")
        node = yield from _tree.resolve_dir(space, parent)
        for name in _tree.split_path(path):
            node = yield from _tree.ensure_dir(space, node, name)
        return node
