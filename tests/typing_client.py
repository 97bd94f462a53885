"""Checked by mypy (see ``[tool.mypy] files``), never run: the exact types the SDK's methods
have on each client, so a change to the shared descriptors cannot turn them into ``Any``."""

from collections.abc import AsyncIterator, Iterator
from typing import assert_type

from openpan.client import (
    AsyncClient,
    AsyncCopyTask,
    AsyncOfflineTask,
    Client,
    CopyProgress,
    CopyTask,
    DirUpload,
    DiskFile,
    Download,
    OfflineProgress,
    OfflineTask,
    OssFile,
    OssPage,
    UploadedFile,
    UserInfo,
)


def blocking(client: Client) -> None:
    assert_type(client.user_info(), UserInfo)
    assert_type(client.oss_list("", limit=10), OssPage)
    assert_type(client.disk_mkdir("a", 0), int)
    assert_type(client.disk_trash([1]), None)
    assert_type(client.upload("cat.jpg", "/pets", concurrency=2), UploadedFile)
    assert_type(client.upload_dir("photos"), DirUpload)
    assert_type(client.download(1, "."), Download)
    assert_type(client.makedirs("/a/b"), str | int)
    assert_type(client.resolve("/a"), OssFile | DiskFile | None)
    assert_type(client.iter_files("/a"), Iterator[OssFile | DiskFile])
    offline = assert_type(client.offline("https://example.com/a.jpg"), OfflineTask)
    assert_type(offline.wait(timeout=1), OfflineProgress)
    copy = assert_type(client.copy([1], "/to"), CopyTask)
    assert_type(copy.progress(), CopyProgress)


async def awaited(client: AsyncClient) -> None:
    assert_type(await client.user_info(), UserInfo)
    assert_type(await client.oss_list("", limit=10), OssPage)
    assert_type(await client.disk_mkdir("a", 0), int)
    assert_type(await client.disk_trash([1]), None)
    assert_type(await client.upload("cat.jpg", "/pets", concurrency=2), UploadedFile)
    assert_type(await client.upload_dir("photos"), DirUpload)
    assert_type(await client.download(1, "."), Download)
    assert_type(await client.makedirs("/a/b"), str | int)
    assert_type(await client.resolve("/a"), OssFile | DiskFile | None)
    assert_type(client.iter_files("/a"), AsyncIterator[OssFile | DiskFile])
    offline = assert_type(await client.offline("https://example.com/a.jpg"), AsyncOfflineTask)
    assert_type(await offline.wait(timeout=1), OfflineProgress)
    copy = assert_type(await client.copy([1], "/to"), AsyncCopyTask)
    assert_type(await copy.progress(), CopyProgress)


def wrong(client: Client) -> None:
    client.user_info(1)  # type: ignore[call-arg]
    client.upload("a", "/b", spce="oss")  # type: ignore[call-arg]
    client.oss_list(limit="10")  # type: ignore[arg-type]
