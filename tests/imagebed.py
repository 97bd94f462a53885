"""Helpers for image-bed tests: the steps of an upload one by one, and looks at the data dir."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pgdb
from conftest import Api, Server

CREATE = "/upload/v1/oss/file/create"
UPLOAD_URL = "/upload/v1/oss/file/get_upload_url"
PARTS = "/upload/v1/oss/file/list_upload_parts"
COMPLETE = "/upload/v1/oss/file/upload_complete"
ASYNC_RESULT = "/upload/v1/oss/file/upload_async_result"
MKDIR = "/upload/v1/oss/file/mkdir"
LIST = "/api/v1/oss/file/list"
DETAIL = "/api/v1/oss/file/detail"
MOVE = "/api/v1/oss/file/move"
DELETE = "/api/v1/oss/file/delete"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def create(
    api: Api,
    data: bytes,
    filename: str = "a.jpg",
    parent: str = "",
    etag: str | None = None,
) -> dict[str, Any]:
    """``data`` of a create that must succeed (declaring ``etag`` instead of the real md5)."""
    body = {
        "parentFileID": parent,
        "filename": filename,
        "etag": etag or md5(data),
        "size": len(data),
        "type": 1,
    }
    created: dict[str, Any] = api.ok("POST", CREATE, body)
    return created


def slice_url(api: Api, pre: str, number: int) -> str:
    url: str = api.ok("POST", UPLOAD_URL, {"preuploadID": pre, "sliceNo": number})["presignedURL"]
    return url


def chunk(data: bytes, number: int, slice_size: int) -> bytes:
    return data[(number - 1) * slice_size : number * slice_size]


def put(url: str, content: Any, **kwargs: Any) -> httpx.Response:
    """PUT a slice as a client does: no Authorization, no Platform."""
    return httpx.put(url, content=content, timeout=60, **kwargs)


def put_slice(api: Api, pre: str, data: bytes, number: int, slice_size: int) -> None:
    response = put(slice_url(api, pre, number), chunk(data, number, slice_size))
    assert response.status_code == 200 and response.content == b"", response.text


def parts(api: Api, pre: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.ok("POST", PARTS, {"preuploadID": pre})["parts"]
    return found


def listing(api: Api, parent: str = "", **extra: Any) -> list[dict[str, Any]]:
    """Every entry of a directory, following the cursor."""
    entries: list[dict[str, Any]] = []
    last = ""
    for _ in range(1000):
        page = api.ok(
            "POST", LIST, {"parentFileId": parent, "limit": 100, "lastFileId": last, **extra}
        )
        entries.extend(page["fileList"])
        last = page["lastFileId"]
        if last == "-1":
            return entries
    raise AssertionError("the cursor never reached the last page")


def names(api: Api, parent: str = "") -> set[str]:
    return {entry["filename"] for entry in listing(api, parent)}


def mkdir(api: Api, name: str, parent: str = "") -> str:
    dir_id: str = api.ok("POST", MKDIR, {"name": name, "parentID": parent, "type": 1})["list"][0][
        "dirID"
    ]
    return dir_id


def blob_files(server: Server, etag: str) -> list[Path]:
    """The files in the server's blob directory holding the bytes with this md5."""
    return sorted((server.data_dir / "blobs" / "blobs" / etag[:2]).glob(f"{etag}-*"))


def upload_dirs(server: Server) -> set[str]:
    """IDs of the uploads whose slices the server's blob store holds."""
    folder = server.data_dir / "blobs" / "uploads"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def query(server: Server, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run SQL on the server's metadata database (tests look behind the API with it)."""
    url = server.env.get("OPENPAN_DATABASE_URL", "")
    if url.startswith("postgres"):
        return pgdb.query(url, sql, *args)
    with closing(sqlite3.connect(server.data_dir / "openpan.db", timeout=30)) as conn, conn:
        return list(conn.execute(sql, args).fetchall())
