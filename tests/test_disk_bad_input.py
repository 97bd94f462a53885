"""Every field of every cloud-disk endpoint, missing, wrong-typed, oversized and hostile, and with
another user's IDs: always an HTTP 200 envelope with a code and a message naming the field,
never an internal error; another user's ID is answered exactly like one that does not exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import Api
from diskkit import (
    ASYNC_RESULT,
    COMPLETE_V1,
    COMPLETE_V2,
    CREATE_V1,
    CREATE_V2,
    DELETE,
    DETAIL,
    DOWNLOAD_INFO,
    INFOS,
    LIST_V1,
    LIST_V2,
    MKDIR,
    MOVE,
    NAME,
    PARTS,
    RECOVER,
    RECOVER_BY_PATH,
    RENAME,
    SINGLE,
    SLICE_V2,
    TRASH,
    UPLOAD_URL,
    blob,
    create_v1,
    md5,
    mkdir,
    upload_v1,
)

MISSING = object()
NOWHERE = 987654321
OBJ = {"a": 1}
HOSTILE_TEXT = ["../../etc/passwd", "x\x00y", "a/b", "<script>", "..", "   ", "x" * 300]


@dataclass
class World:
    """IDs the matrix needs: the caller's, and another user's of each kind."""

    file: int
    dir: int
    pre: str
    other_file: int
    other_dir: int
    other_pre: str


@pytest.fixture
def world(api: Api, other_api: Api) -> World:
    folder = mkdir(api, "matrix")
    file_id = upload_v1(api, blob(100), "m.bin", folder)
    pre = create_v1(api, blob(10), "pending.bin")["data"]["preuploadID"]
    other_dir = mkdir(other_api, "theirs")
    other_file = upload_v1(other_api, blob(100), "t.bin", other_dir)
    other_pre = create_v1(other_api, blob(10), "theirs.bin")["data"]["preuploadID"]
    return World(file_id, folder, pre, other_file, other_dir, other_pre)


def file_id_cases(w: World) -> list[tuple[Any, int]]:
    return [
        (MISSING, 1),
        ("abc", 1),
        (1.5, 1),
        (True, 1),
        (OBJ, 1),
        ([1, 2], 1),
        (2**70, 1),
        ("9" * 40, 1),
        (-1, 1),
        (0, 1),
        ("1 OR 1=1", 1),
        (NOWHERE, 5066),
        (w.other_file, 5066),
    ]


def dir_id_cases(w: World) -> list[tuple[Any, int]]:
    return [
        ("abc", 1),
        (1.5, 1),
        (True, 1),
        (OBJ, 1),
        (2**70, 1),
        (-1, 1),
        ("../0", 1),
        (NOWHERE, 5066),
        (w.other_dir, 5066),
        (w.file, 5066),  # a file is not a directory
    ]


def ids_cases(w: World) -> list[tuple[Any, int]]:
    return [
        (MISSING, 1),
        ([], 1),
        ("abc", 1),
        (["abc"], 1),
        ([1.5], 1),
        ([True], 1),
        ([[1]], 1),
        (OBJ, 1),
        ([OBJ], 1),
        (list(range(1, 102)), 1),
        ([-1], 1),
        ([2**70], 1),
        ([NOWHERE], 5066),
        ([w.other_file], 5066),
        ([w.file, w.other_file], 5066),
    ]


def name_cases() -> list[tuple[Any, int]]:
    return [
        (MISSING, 1),
        ("", 1),
        (OBJ, 1),
        (True, 1),
        ([1, 2], 1),
        ("a|b", 1),
        ("x" * 5000, 1),
    ] + [(text, 1) for text in HOSTILE_TEXT]


def pre_cases(w: World) -> list[tuple[Any, int]]:
    return [
        (MISSING, 1),
        ("", 1),
        ("x" * 300, 1),
        (OBJ, 1),
        ("../../etc", 5066),
        ("nope", 5066),
        (w.other_pre, 5066),
    ]


BOOL = [("maybe", 1), (OBJ, 1), (2, 1)]
LIMIT = [(0, 1), (101, 1), ("abc", 1), (-5, 1), (OBJ, 1)]


def matrix(w: World) -> list[tuple[str, str, dict[str, Any], str, list[tuple[Any, int]]]]:
    """(method, path, a valid body, field, [(bad value, expected code)])."""
    create = {"parentFileID": w.dir, "filename": "new.txt", "etag": md5(b"new"), "size": 3}
    etag = [(MISSING, 1), ("xyz", 1), ("g" * 32, 1), ("a" * 33, 1), (123, 1), (OBJ, 1)]
    size = [(MISSING, 1), (-1, 1), ("abc", 1), (11 * 1024**3, 1), (1.5, 1), (True, 1)]
    duplicate = [(3, 1), (-1, 1), ("abc", 1), (OBJ, 1)]
    rows: list[tuple[str, str, dict[str, Any], str, list[tuple[Any, int]]]] = [
        ("POST", MKDIR, {"name": "ok1", "parentID": w.dir}, "name", name_cases()),
        ("POST", MKDIR, {"name": "ok2", "parentID": w.dir}, "parentID", dir_id_cases(w)),
    ]
    for path in (CREATE_V1, CREATE_V2):
        rows += [
            ("POST", path, create, "parentFileID", dir_id_cases(w)),
            ("POST", path, create, "filename", name_cases()),
            ("POST", path, create, "etag", etag),
            ("POST", path, create, "size", size),
            ("POST", path, create, "duplicate", duplicate),
            ("POST", path, create, "containDir", BOOL),
        ]
    upload_url = {"preuploadID": w.pre, "sliceNo": 1}
    rows += [
        ("POST", UPLOAD_URL, upload_url, "preuploadID", pre_cases(w)),
        (
            "POST",
            UPLOAD_URL,
            upload_url,
            "sliceNo",
            [(MISSING, 1), (0, 1), (-1, 1), ("abc", 1), (10**6, 1), (1.5, 1), (2, 1)],
        ),
    ]
    for path in (PARTS, COMPLETE_V1, ASYNC_RESULT, COMPLETE_V2):
        rows.append(("POST", path, {"preuploadID": w.pre}, "preuploadID", pre_cases(w)))
    list_v2 = {"parentFileId": w.dir, "limit": 10}
    rows += [
        ("GET", LIST_V2, list_v2, "parentFileId", dir_id_cases(w)[:-1]),
        ("GET", LIST_V2, list_v2, "limit", LIMIT),
        ("GET", LIST_V2, list_v2, "searchData", [("x" * 300, 1), (OBJ, 1)]),
        ("GET", LIST_V2, list_v2, "searchMode", [(2, 1), ("abc", 1), (-1, 1)]),
        ("GET", LIST_V2, list_v2, "lastFileId", [("abc", 1), (-2, 1), (OBJ, 1)]),
        ("GET", LIST_V2, list_v2, "trashed", BOOL),
    ]
    list_v1 = {"parentFileId": w.dir, "page": 1, "limit": 10, "orderBy": "file_id"}
    rows += [
        ("GET", LIST_V1, list_v1, "parentFileId", dir_id_cases(w)[:-1]),
        ("GET", LIST_V1, list_v1, "page", [(0, 1), ("abc", 1), (-1, 1), (10**9, 1)]),
        ("GET", LIST_V1, list_v1, "limit", LIMIT),
        ("GET", LIST_V1, list_v1, "orderBy", [("secret", 1), (OBJ, 1), ("id; DROP", 1)]),
        ("GET", LIST_V1, list_v1, "orderDirection", [("up", 1), (OBJ, 1)]),
        ("GET", LIST_V1, list_v1, "trashed", BOOL),
        ("GET", LIST_V1, list_v1, "searchData", [("x" * 300, 1), (OBJ, 1)]),
        ("GET", DETAIL, {"fileID": w.file}, "fileID", file_id_cases(w)),
        ("GET", DOWNLOAD_INFO, {"fileId": w.file}, "fileId", file_id_cases(w)),
        ("POST", INFOS, {"fileIds": [w.file]}, "fileIds", ids_cases(w)[:-3]),
        ("POST", MOVE, {"fileIDs": [w.file], "toParentFileID": w.dir}, "fileIDs", ids_cases(w)),
        (
            "POST",
            MOVE,
            {"fileIDs": [w.file], "toParentFileID": w.dir},
            "toParentFileID",
            dir_id_cases(w),
        ),
        ("PUT", NAME, {"fileId": w.file, "fileName": "m.bin"}, "fileId", file_id_cases(w)),
        ("PUT", NAME, {"fileId": w.file, "fileName": "m.bin"}, "fileName", name_cases()),
        (
            "POST",
            RENAME,
            {"renameList": [f"{w.file}|m.bin"]},
            "renameList",
            [
                (MISSING, 1),
                ([], 1),
                (["nobar"], 1),
                (["abc|x"], 1),
                (["-1|x"], 1),
                ([OBJ], 1),
                ([f"{w.file}|x{i}" for i in range(31)], 1),
                ([f"{w.file}|" + "x" * 2000], 1),
                (OBJ, 1),
            ],
        ),
        ("POST", TRASH, {"fileIDs": [w.file]}, "fileIDs", ids_cases(w)),
        ("POST", RECOVER, {"fileIDs": [w.file]}, "fileIDs", ids_cases(w)),
        ("POST", DELETE, {"fileIDs": [w.file]}, "fileIDs", ids_cases(w)),
        (
            "POST",
            RECOVER_BY_PATH,
            {"fileIDs": [w.file], "parentFileID": w.dir},
            "fileIDs",
            ids_cases(w),
        ),
        (
            "POST",
            RECOVER_BY_PATH,
            {"fileIDs": [w.file], "parentFileID": w.dir},
            "parentFileID",
            [(MISSING, 1), *dir_id_cases(w)],
        ),
    ]
    return rows


def send(api: Api, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    if method == "GET":
        return (
            api.call("GET", path, params=body) if _flat(body) else api.call("GET", path, json=body)
        )
    return api.call(method, path, json=body)


def _flat(body: dict[str, Any]) -> bool:
    return all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in body.values())


# Their valid body would change what the other rows rely on (the file must stay live).
NO_BASE_CALL = {TRASH, RECOVER, DELETE, RECOVER_BY_PATH, COMPLETE_V1, COMPLETE_V2}


def test_every_field_of_every_endpoint(api: Api, world: World) -> None:
    for method, path, base, field, cases in matrix(world):
        if path not in NO_BASE_CALL:
            assert send(api, method, path, base)["code"] == 0, (path, base)
        for value, code in cases:
            body = dict(base)
            if value is MISSING:
                body.pop(field)
            else:
                body[field] = value
            answer = send(api, method, path, body)
            where = (path, field, value if not isinstance(value, str) else value[:40], answer)
            assert answer["code"] == code, where
            assert answer["data"] is None, where
            assert answer["message"].lower().startswith(field.lower()), where


def test_another_users_id_is_answered_like_a_missing_one(api: Api, world: World) -> None:
    checked = 0
    for method, path, base, field, cases in matrix(world):
        others = [v for v, _ in cases if v in (world.other_file, world.other_dir, world.other_pre)]
        others += [v for v, _ in cases if v in ([world.other_file],)]
        for other in others:
            if isinstance(other, list):
                nowhere: Any = [NOWHERE]
                shown, hidden = str(other[0]), str(NOWHERE)
            elif isinstance(other, str):
                nowhere, shown, hidden = "nope", other, "nope"
            else:
                nowhere, shown, hidden = NOWHERE, str(other), str(NOWHERE)
            theirs = send(api, method, path, {**base, field: other})
            missing = send(api, method, path, {**base, field: nowhere})
            assert theirs["code"] == missing["code"] != 0, (path, field, theirs, missing)
            assert theirs["message"].replace(shown, hidden) == missing["message"], (path, field)
            checked += 1
    assert checked >= 20
    # infos quietly leaves out what is not there, and another user's files alike.
    assert api.ok("POST", INFOS, {"fileIds": [world.other_file, NOWHERE]}) == {
        "list": [],
        "fileList": [],
    }


def test_rename_list_entries_for_unknown_files_fail_one_by_one(api: Api, world: World) -> None:
    answer = api.ok(
        "POST", RENAME, {"renameList": [f"{world.other_file}|x.txt", f"{NOWHERE}|y.txt"]}
    )
    assert answer["successList"] == []
    theirs, missing = answer["failList"]
    assert theirs["fileID"] == world.other_file and missing["fileID"] == NOWHERE
    assert theirs["message"].replace(str(world.other_file), "N") == missing["message"].replace(
        str(NOWHERE), "N"
    )


def test_searches_with_sql_and_like_syntax_are_plain_text(api: Api, world: World) -> None:
    for text in ("%", "_", "' OR 1=1 --", "\\", "名字"):
        answer = api.get(LIST_V2, {"parentFileId": 0, "limit": 10, "searchData": text})
        assert answer["code"] == 0 and answer["data"]["fileList"] == [], (text, answer)
    # A NUL can be stored by neither database: refused, naming the field.
    answer = api.get(LIST_V2, {"parentFileId": 0, "limit": 10, "searchData": "\x00"})
    assert answer["code"] == 1 and answer["message"].startswith("searchData"), answer


def _form(api: Api, path: str, fields: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        api.server.url + path, headers=api.headers, data=fields, files=files, timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "data", "x-traceID"}
    return body


def test_v2_slice_form_fields(api: Api, world: World) -> None:
    chunk = blob(10)
    created = api.ok(
        "POST", CREATE_V2, {"parentFileID": 0, "filename": "f.bin", "etag": md5(chunk), "size": 10}
    )
    base = {"preuploadID": created["preuploadID"], "sliceNo": "1", "sliceMD5": md5(chunk)}
    cases: list[tuple[str, Any, int]] = [
        ("preuploadID", MISSING, 1),
        ("preuploadID", "", 1),
        ("preuploadID", "x" * 300, 1),
        ("preuploadID", "nope", 5066),
        ("preuploadID", world.other_pre, 5066),
        ("sliceNo", MISSING, 1),
        ("sliceNo", "0", 1),
        ("sliceNo", "abc", 1),
        ("sliceNo", "2", 1),
        ("sliceNo", "9" * 40, 1),
        ("sliceMD5", MISSING, 1),
        ("sliceMD5", "xyz", 1),
        ("sliceMD5", "0" * 32, 1),
        ("sliceMD5", "\x00" * 32, 1),
    ]
    for field, value, code in cases:
        fields = dict(base)
        if value is MISSING:
            fields.pop(field)
        else:
            fields[field] = value
        answer = _form(api, SLICE_V2, fields, {"slice": ("p", chunk)})
        assert answer["code"] == code and answer["message"].startswith(field), (field, answer)
    wrong_name = _form(api, SLICE_V2, base, {"file": ("p", chunk)})
    assert wrong_name["code"] == 1 and wrong_name["message"].startswith("multipart")
    twice = _form(api, SLICE_V2, base, {"slice": ("p", chunk), "slice ": ("q", chunk)})
    assert twice["code"] in (0, 1)
    garbage = httpx.post(
        api.server.url + SLICE_V2,
        headers={**api.headers, "Content-Type": "multipart/form-data; boundary=xyz"},
        content=b"--xyz\r\nnot a part at all",
    ).json()
    assert garbage["code"] == 1 and garbage["data"] is None
    no_boundary = httpx.post(
        api.server.url + SLICE_V2,
        headers={**api.headers, "Content-Type": "multipart/form-data"},
        content=b"whatever",
    ).json()
    assert no_boundary["code"] == 1 and "multipart" in no_boundary["message"]
    ok = _form(api, SLICE_V2, base, {"slice": ("p", chunk)})
    assert ok["code"] == 0


def test_single_upload_form_fields(api: Api, world: World) -> None:
    data = b"single"
    base = {"parentFileID": "0", "filename": "s.txt", "etag": md5(data), "size": str(len(data))}
    cases: list[tuple[str, Any, int]] = [
        ("parentFileID", "abc", 1),
        ("parentFileID", str(NOWHERE), 5066),
        ("parentFileID", str(world.other_dir), 5066),
        ("filename", MISSING, 1),
        ("filename", "", 1),
        ("filename", "a/b", 1),
        ("filename", "x" * 300, 1),
        ("etag", MISSING, 1),
        ("etag", "xyz", 1),
        ("etag", md5(b"other"), 1),
        ("size", MISSING, 1),
        ("size", "-1", 1),
        ("size", str(2 * 1024**3), 1),
        ("size", "5", 1),
        ("duplicate", "7", 1),
        ("containDir", "maybe", 1),
    ]
    for field, value, code in cases:
        fields = dict(base)
        if value is MISSING:
            fields.pop(field)
        else:
            fields[field] = value
        answer = _form(api, SINGLE, fields, {"file": ("s.txt", data)})
        assert answer["code"] == code and answer["message"].startswith(field), (field, answer)
    no_file = _form(api, SINGLE, base, {})
    assert no_file["code"] == 1
    assert _form(api, SINGLE, base, {"file": ("s.txt", data)})["code"] == 0
