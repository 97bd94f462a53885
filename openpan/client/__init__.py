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
