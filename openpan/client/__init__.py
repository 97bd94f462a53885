"""The openpan Python SDK: a typed client of the 123pan open-platform API.

It works against an openpan server and, by base URL, against the real service
(``https://open-api.123pan.com``)::

    from openpan.client import Client

    with Client(base_url="http://127.0.0.1:8123", client_id="…", client_secret="…") as pan:
        uploaded = pan.upload("cat.jpg", "/pets")
        print(uploaded.link)

``AsyncClient`` has the same methods, awaited. Errors derive from ``ClientError``; answers
are the models below.
"""

from typing import TYPE_CHECKING, Any

# Names are imported on first use (PEP 562), so that a program that needs only a few (the
# command line's start, an exception class) does not pay for httpx and every model.
_WHERE = {
    "APIError": "_exceptions",
    "AccessToken": "_models",
    "AsyncClient": "_async_client",
    "AsyncCopyTask": "_handles",
    "AsyncOfflineTask": "_handles",
    "AuthenticationError": "_exceptions",
    "Client": "_client",
    "ClientError": "_exceptions",
    "CopyFailure": "_models",
    "CopyFailures": "_models",
    "CopyProgress": "_models",
    "CopyStatus": "_models",
    "CopyTask": "_handles",
    "DirUpload": "_models",
    "DiskFile": "_models",
    "DiskPage": "_models",
    "DiskPageV1": "_models",
    "Download": "_models",
    "DownloadError": "_exceptions",
    "DownloadInfo": "_models",
    "IfExists": "_upload",
    "ImageInfo": "_models",
    "NotFoundError": "_exceptions",
    "OfflineProgress": "_models",
    "OfflineStatus": "_models",
    "OfflineTask": "_handles",
    "OssDir": "_models",
    "OssFile": "_models",
    "OssPage": "_models",
    "RateLimitError": "_exceptions",
    "RenameResult": "_models",
    "Space": "_models",
    "StillVerifyingError": "_exceptions",
    "TaskFailed": "_exceptions",
    "TrafficExceededError": "_exceptions",
    "TransportError": "_exceptions",
    "UploadCompleted": "_models",
    "UploadCreated": "_models",
    "UploadError": "_exceptions",
    "UploadFailure": "_models",
    "UploadPart": "_models",
    "UploadResult": "_models",
    "UploadURL": "_models",
    "UploadedFile": "_models",
    "UserInfo": "_models",
    "WaitTimeout": "_exceptions",
}

if TYPE_CHECKING:
    from openpan.client._async_client import AsyncClient
    from openpan.client._client import Client
    from openpan.client._exceptions import (
        APIError,
        AuthenticationError,
        ClientError,
        DownloadError,
        NotFoundError,
        RateLimitError,
        StillVerifyingError,
        TaskFailed,
        TrafficExceededError,
        TransportError,
        UploadError,
        WaitTimeout,
    )
    from openpan.client._handles import AsyncCopyTask, AsyncOfflineTask, CopyTask, OfflineTask
    from openpan.client._models import (
        AccessToken,
        CopyFailure,
        CopyFailures,
        CopyProgress,
        CopyStatus,
        DirUpload,
        DiskFile,
        DiskPage,
        DiskPageV1,
        Download,
        DownloadInfo,
        ImageInfo,
        OfflineProgress,
        OfflineStatus,
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
    from openpan.client._upload import IfExists


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "APIError",
    "AccessToken",
    "AsyncClient",
    "AsyncCopyTask",
    "AsyncOfflineTask",
    "AuthenticationError",
    "Client",
    "ClientError",
    "CopyFailure",
    "CopyFailures",
    "CopyProgress",
    "CopyStatus",
    "CopyTask",
    "DirUpload",
    "DiskFile",
    "DiskPage",
    "DiskPageV1",
    "Download",
    "DownloadError",
    "DownloadInfo",
    "IfExists",
    "ImageInfo",
    "NotFoundError",
    "OfflineProgress",
    "OfflineStatus",
    "OfflineTask",
    "OssDir",
    "OssFile",
    "OssPage",
    "RateLimitError",
    "RenameResult",
    "Space",
    "StillVerifyingError",
    "TaskFailed",
    "TrafficExceededError",
    "TransportError",
    "UploadCompleted",
    "UploadCreated",
    "UploadError",
    "UploadFailure",
    "UploadPart",
    "UploadResult",
    "UploadURL",
    "UploadedFile",
    "UserInfo",
    "WaitTimeout",
]
