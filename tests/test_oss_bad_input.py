"""Every field of every image-bed endpoint, missing, of the wrong type, oversized and hostile.

Each answer is an HTTP 200 envelope with a non-zero code, ``data: null`` and a message that
names the field; nothing a refused request touched becomes visible.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from conftest import Api, MiB, Server, jpeg_bytes
from imagebed import (
    ASYNC_RESULT,
    COMPLETE,
    CREATE,
    DELETE,
    DETAIL,
    LIST,
    MKDIR,
    MOVE,
    PARTS,
    UPLOAD_URL,
    create,
    md5,
    mkdir,
    parts,
    put,
    slice_url,
)


@dataclass
class World:
    """One user's fixed state that every bad request is tried against."""

    api: Api
    folder: str
    file_id: str
    pre: str
    url: str
    data: bytes
    initial: list[tuple[str, str, str]] | None = None

    def base(self, path: str) -> dict[str, Any]:
        """A request to ``path`` that would succeed."""
        return {
            MKDIR: {"name": "fresh", "parentID": "", "type": 1},
            CREATE: {
                "parentFileID": "",
                "filename": "fresh.jpg",
                "etag": md5(b"fresh"),
                "size": 5,
                "type": 1,
            },
            UPLOAD_URL: {"preuploadID": self.pre, "sliceNo": 1},
            PARTS: {"preuploadID": self.pre},
            COMPLETE: {"preuploadID": self.pre},
            ASYNC_RESULT: {"preuploadID": self.pre},
            LIST: {"parentFileId": "", "limit": 10, "type": 1},
            DETAIL: {"fileID": self.file_id},
            MOVE: {"fileIDs": [self.file_id], "toParentFileID": self.folder},
            DELETE: {"fileIDs": [self.file_id]},
        }[path]

    def snapshot(self) -> list[tuple[str, str, str]]:
        """Everything the user can see, to show that a refused request changed nothing."""
        entries = self.api.ok("POST", LIST, {"limit": 100})["fileList"]
        inside = self.api.ok("POST", LIST, {"parentFileId": self.folder, "limit": 100})["fileList"]
        return sorted((e["fileId"], e["filename"], e["parentFileId"]) for e in entries + inside)


@pytest.fixture(scope="module")
def world(server: Server) -> Iterator[World]:
    api = server.client(server.take_user())
    folder = mkdir(api, "folder")
    file_id = api.oss_upload(jpeg_bytes(500), "image.jpg")
    data = jpeg_bytes(MiB + 100)
    pre = create(api, data, "pending.jpg")["preuploadID"]
    world = World(api, folder, file_id, pre, slice_url(api, pre, 1), data)
    world.initial = world.snapshot()
    yield world
    api.close()


# Endpoints that change what the user sees; after a refused call to one, nothing has changed.
CHANGING = {MKDIR, CREATE, COMPLETE, MOVE, DELETE}


def refused(world: World, path: str, body: dict[str, Any], field: str) -> None:
    answer = world.api.post(path, body)
    assert answer["code"] != 0 and answer["data"] is None, (body, answer)
    assert field in answer["message"], (field, answer["message"])
    assert "Traceback" not in answer["message"]
    if path in CHANGING:
        assert world.snapshot() == world.initial


# Values that are wrong for any field of their kind --------------------------------------------

NOT_TEXT: list[Any] = [True, False, {"a": "b"}, ["a", "b"], [["a"]], [{}], [None], []]
HUGE_TEXT = "x" * 100_000
HOSTILE_IDS = ["../..", "/etc/passwd", "a/../../b", "\x00", "\x1b[2J", "%2e%2e%2f", "-1", "0"]
HOSTILE_NAMES = [
    "",
    "   ",
    ".",
    "..",
    "../x",
    "a/b",
    "a\\b",
    'a"b',
    "a:b",
    "a*b",
    "a?b",
    "a|b",
    "a<b",
    "a>b",
    "a\x00b",
    "a\nb",
    "a\rb",
    "a\tb",
    "a\x1fb",
    "a\x7fb",
    "n" * 255,
]
NOT_INTEGERS: list[Any] = [
    "x",
    "1.5",
    1.5,
    True,
    False,
    {},
    [],
    [1, 2],
    "1e3",
    "0x10",
    "١٢",  # Arabic-Indic digits are digits to str.isdigit, not to us
    10**30,
    -(10**30),
    "9" * 40,
]

KINDS: dict[str, list[Any]] = {
    "dir_id": [*NOT_TEXT, HUGE_TEXT, *HOSTILE_IDS, "z" * 64],
    "file_id": ["", *NOT_TEXT, HUGE_TEXT, *HOSTILE_IDS, "z" * 64],
    "upload_id": ["", *NOT_TEXT, HUGE_TEXT, *HOSTILE_IDS, "x" * 300, 12345],
    "cursor": [True, {"a": 1}, ["a", "b"], [{}], HUGE_TEXT],
    "names": [
        True,
        {"a": 1},
        [],
        [True],
        [{}],
        [None],
        [["x"]],
        [f"n{i}" for i in range(101)],
        ["ok", "ok"],
        *HOSTILE_NAMES,
        *[[name] for name in HOSTILE_NAMES[:6]],
        HUGE_TEXT,
    ],
    "image_name": [
        *NOT_TEXT,
        HUGE_TEXT,
        *[f"{name}.jpg" for name in HOSTILE_NAMES if name.strip(" .")],
        "",
        "n" * 251 + ".jpg",
        "a.txt",
        "image.jpg",  # taken
        "folder.jpg/..",
        12345,
        1.5,
    ],
    "md5": [
        "",
        "z" * 32,
        "0" * 31,
        "0" * 33,
        " " + "0" * 31,
        "0" * 32 + "\n",
        "0" * 32 + " ",
        "%30" * 32,
        12345,
        *NOT_TEXT,
        HUGE_TEXT,
    ],
    "size": [0, -1, -(2**63), 2**63, 100_000_001, "", "  ", *NOT_INTEGERS],
    "slice_no": [0, -1, 3, 100_001, "", *NOT_INTEGERS],
    "limit": [0, -1, 101, 2**40, *NOT_INTEGERS],
    "time": [-1, 2**41, *NOT_INTEGERS],
    "type": [0, 2, -1, "2", "x", 1.5, True, False, {}, [], [1, 1], 10**30],
    "file_ids": [
        [],
        {},
        True,
        1.5,
        [True],
        [{}],
        [[]],
        [None],
        [1.5],
        ["x" * 1000],
        [f"id{i}" for i in range(101)],
        HUGE_TEXT,
        "[not json",
        *HOSTILE_IDS,
        [*HOSTILE_IDS],
    ],
}

# endpoint, field as documented, kind of value, required
FIELDS: list[tuple[str, str, str, bool]] = [
    (MKDIR, "name", "names", True),
    (MKDIR, "parentID", "dir_id", False),
    (MKDIR, "type", "type", False),
    (CREATE, "parentFileID", "dir_id", False),
    (CREATE, "filename", "image_name", True),
    (CREATE, "etag", "md5", True),
    (CREATE, "size", "size", True),
    (CREATE, "type", "type", False),
    (UPLOAD_URL, "preuploadID", "upload_id", True),
    (UPLOAD_URL, "sliceNo", "slice_no", True),
    (PARTS, "preuploadID", "upload_id", True),
    (COMPLETE, "preuploadID", "upload_id", True),
    (ASYNC_RESULT, "preuploadID", "upload_id", True),
    (LIST, "parentFileId", "dir_id", False),
    (LIST, "limit", "limit", False),
    (LIST, "startTime", "time", False),
    (LIST, "endTime", "time", False),
    (LIST, "lastFileId", "cursor", False),
    (LIST, "type", "type", False),
    (DETAIL, "fileID", "file_id", True),
    (MOVE, "fileIDs", "file_ids", True),
    (MOVE, "toParentFileID", "dir_id", False),
    (DELETE, "fileIDs", "file_ids", True),
]

CASES = [
    pytest.param(path, field, value, id=f"{path.rsplit('/', 1)[1]}-{field}-{index}")
    for path, field, kind, _ in FIELDS
    for index, value in enumerate(KINDS[kind])
]


@pytest.mark.parametrize(("path", "field", "value"), CASES)
def test_a_bad_value_is_refused_naming_the_field(
    world: World, path: str, field: str, value: Any
) -> None:
    if value == "z" * 64 and path == CREATE:
        value = "z" * 65  # longer than any ID
    body = {**world.base(path), field: value}
    refused(world, path, body, field)


TEXT_KINDS = {"dir_id", "file_id", "upload_id", "cursor", "names", "image_name", "md5", "file_ids"}


@pytest.mark.parametrize(
    ("path", "field", "kind"),
    [
        pytest.param(p, f, k, id=f"{p.rsplit('/', 1)[1]}-{f}")
        for p, f, k, _ in FIELDS
        if k in TEXT_KINDS
    ],
)
@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "a\x00b"], ids=["hi", "lo", "nul"])
def test_text_no_database_can_store_is_refused_naming_the_field(
    world: World, path: str, field: str, kind: str, text: str
) -> None:
    value: Any = [text] if kind in ("file_ids",) else text
    body = {**world.base(path), field: value}
    # json.dumps writes these as \u escapes, as a client's JSON encoder may.
    response = world.api.http.post(path, content=json.dumps(body), headers=world.api.headers)
    assert response.status_code == 200
    answer = response.json()
    assert answer["code"] != 0 and field in answer["message"], answer


@pytest.mark.parametrize(
    ("path", "field"),
    [pytest.param(p, f, id=f"{p.rsplit('/', 1)[1]}-{f}") for p, f, _, req in FIELDS if req],
)
def test_a_missing_required_field_is_refused_naming_it(world: World, path: str, field: str) -> None:
    body = world.base(path)
    del body[field]
    refused(world, path, body, field)
    refused(world, path, {**body, field: None}, field)


def test_json_null_for_an_optional_field_means_left_out(world: World) -> None:
    page = world.api.ok("POST", LIST, {"parentFileId": None, "limit": None, "type": None})
    assert len(page["fileList"]) == 2
    folder = world.api.ok("POST", MKDIR, {"name": "null-parent", "parentID": None})["list"][0]
    world.api.ok("POST", DELETE, {"fileIDs": [folder["dirID"]]})


@pytest.mark.parametrize("field", ["fileID", "fileId", "FILEID"])
def test_hostile_ids_in_the_query_string(world: World, field: str) -> None:
    for value in [*HOSTILE_IDS, "'; DROP TABLE files; --", "%00", "\u202e", "😀" * 10]:
        answer = world.api.get(DETAIL, {field: value})
        assert answer["code"] in (1, 5066) and "fileID" in answer["message"], (value, answer)
    assert world.api.get(DETAIL, {field: world.file_id})["code"] == 0


# Bodies that are wrong as a whole ----------------------------------------------------------

ALL_PATHS = [MKDIR, CREATE, UPLOAD_URL, PARTS, COMPLETE, ASYNC_RESULT, LIST, DETAIL, MOVE, DELETE]
BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("10 MB JSON", b'{"name": "' + b"x" * 10_000_000 + b'"}', "application/json"),
    ("10 MB form", b"name=" + b"x" * 10_000_000, "application/x-www-form-urlencoded"),
    (
        "10 MB multipart",
        b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\n'
        + b"x" * 10_000_000
        + b"\r\n--b--\r\n",
        "multipart/form-data; boundary=b",
    ),
    ("deeply nested", b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json"),
    ("deep objects", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json"),
    ("invalid UTF-8", b'{"name": "\xff\xfe\xfd"}', "application/json"),
    ("lone surrogate bytes", b'{"name": "\xed\xa0\x80"}', "application/json"),
    ("JSON array", b'["name", "x"]', "application/json"),
    ("truncated JSON", b'{"name": "x"', "application/json"),
    ("huge integer", b'{"size": ' + b"9" * 5000 + b"}", "application/json"),
    ("NaN", b'{"size": NaN, "limit": Infinity, "sliceNo": -Infinity}', "application/json"),
    ("binary", bytes(range(256)) * 10, "application/octet-stream"),
    ("many repeated keys", b"limit=1&" * 120_000, "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize("path", ALL_PATHS, ids=[p.rsplit("/", 1)[1] for p in ALL_PATHS])
@pytest.mark.parametrize(
    ("case", "body", "content_type"), BAD_BODIES, ids=[c for c, _, _ in BAD_BODIES]
)
def test_a_hostile_body_is_refused_and_the_connection_lives_on(
    world: World, path: str, case: str, body: bytes, content_type: str
) -> None:
    response = world.api.http.post(
        path, content=body, headers={**world.api.headers, "Content-Type": content_type}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"code", "message", "data", "x-traceID"}
    assert answer["code"] != 0 and answer["data"] is None and answer["message"]
    assert world.api.post(LIST, {"limit": 1})["code"] == 0  # same client, same connection
    if path in CHANGING:
        assert world.snapshot() == world.initial


def test_unicode_escapes_in_json_are_names_like_any_other(world: World) -> None:
    folder = world.api.ok("POST", MKDIR, {"name": "\u6d4b\u8bd5 \U0001f600"})["list"][0]
    assert folder["filename"] == "测试 😀"
    # An escaped control character is still a control character.
    answer = world.api.http.post(MKDIR, content=b'{"name": "a\\u0000b"}', headers=world.api.headers)
    assert answer.json()["code"] == 1 and "name" in answer.json()["message"]
    world.api.ok("POST", DELETE, {"fileIDs": [folder["dirID"]]})


# The presigned PUT -------------------------------------------------------------------------


def _tamper(url: str, path: str | None = None, **query: str | None) -> str:
    parts_ = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts_.query).items()}
    for key, value in query.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return urlunsplit(parts_._replace(path=path or parts_.path, query=urlencode(params)))


def _slice_path(url: str, upload: str, number: str) -> str:
    return f"/upload/slice/{upload}/{number}"


SLICE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("sliceNo 0", {"number": "0"}),
    ("sliceNo negative", {"number": "-1"}),
    ("sliceNo huge", {"number": "9" * 30}),
    ("sliceNo text", {"number": "one"}),
    ("sliceNo float", {"number": "1.0"}),
    ("sliceNo 2 with slice 1's signature", {"number": "2"}),
    ("upload id dots", {"upload": ".."}),
    ("upload id encoded dots", {"upload": "%2e%2e"}),
    ("upload id traversal", {"upload": "..%2f..%2fetc"}),
    ("upload id huge", {"upload": "u" * 5000}),
    ("no expires", {"expires": None}),
    ("expires text", {"expires": "soon"}),
    ("expires negative", {"expires": "-5"}),
    ("expires past", {"expires": "1"}),
    ("expires huge", {"expires": "9" * 40}),
    ("no signature", {"signature": None}),
    ("empty signature", {"signature": ""}),
    ("short signature", {"signature": "ab"}),
    ("huge signature", {"signature": "a" * 20_000}),
    ("non-hex signature", {"signature": "Z" * 64}),
]


@pytest.mark.parametrize(("case", "change"), SLICE_CASES, ids=[c for c, _ in SLICE_CASES])
def test_a_tampered_presigned_put_is_refused(
    world: World, case: str, change: dict[str, Any]
) -> None:
    change = dict(change)
    original = urlsplit(world.url).path.split("/")
    upload = change.pop("upload", original[3])
    number = change.pop("number", original[4])
    url = _tamper(world.url, path=f"/upload/slice/{upload}/{number}", **change)
    response = put(url, world.data[:MiB])
    assert response.status_code in (400, 403, 404), (response.status_code, response.text)
    answer = response.json()
    assert answer["code"] != 0 and answer["data"] is None and answer["message"]
    assert parts(world.api, world.pre) == []


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("empty", b""),
        ("one byte short", b"x" * (MiB - 1)),
        ("one byte over", b"x" * (MiB + 1)),
        ("ten times over", b"x" * (10 * MiB)),
    ],
)
def test_a_presigned_put_of_the_wrong_size_is_refused(world: World, case: str, body: bytes) -> None:
    response = put(world.url, body)
    assert response.status_code == 400, response.text
    assert "slice" in response.json()["message"]
    assert parts(world.api, world.pre) == []


def test_a_presigned_put_with_auth_headers_or_a_json_label_still_stores_bytes(world: World) -> None:
    # Clients are told not to send these, and some do anyway; the URL decides.
    response = put(
        world.url,
        world.data[:MiB],
        headers={**world.api.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200 and response.content == b""
    assert [p["etag"] for p in parts(world.api, world.pre)] == [md5(world.data[:MiB])]
    assert put(world.url, world.data[:MiB]).status_code == 200


def test_the_seed_documents_own_example_requests(server: Server) -> None:
    """The request bodies of ``oss-image-bed-api.md``, with their IDs swapped for real ones."""
    api = server.client(server.take_user())
    try:
        made = api.ok("POST", MKDIR, {"name": "测试图床目录", "parentID": "", "type": 1})
        dir_id = made["list"][0]["dirID"]
        data = jpeg_bytes(22_032_384 // 16)
        created = api.ok(
            "POST",
            CREATE,
            {
                "parentFileID": dir_id,
                "filename": "测试图床.jpg",
                "etag": md5(data),
                "size": len(data),
                "type": 1,
            },
        )
        pre = created["preuploadID"]
        url = api.ok("POST", UPLOAD_URL, {"preuploadID": pre, "sliceNo": 1})
        assert set(url) == {"presignedURL", "isMultipart"}
        # The PUT as the document's cURL sends it: Content-Type application/octet-stream.
        for number in (1, 2):
            target = api.ok("POST", UPLOAD_URL, {"preuploadID": pre, "sliceNo": number})
            piece = data[(number - 1) * MiB : number * MiB]
            sent = httpx.put(
                target["presignedURL"],
                content=piece,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert sent.status_code == 200 and sent.content == b""
        done = api.ok("POST", COMPLETE, {"preuploadID": pre})
        assert set(done) == {"async", "completed", "fileID"}
        result = api.ok("POST", ASYNC_RESULT, {"preuploadID": pre})
        assert set(result) == {"completed", "fileID"} and result["completed"] is True
        file_id = result["fileID"]
        listed = api.ok("POST", LIST, {"parentFileId": dir_id, "limit": 100, "type": 1})
        assert listed["lastFileId"] == "-1" and listed["fileList"][0]["fileId"] == file_id
        # GET detail as the document sends it: a JSON Content-Type and no body.
        detail = api.http.get(
            f"{DETAIL}?fileID={file_id}",
            headers={**api.headers, "Content-Type": "application/json"},
        ).json()
        assert detail["code"] == 0 and detail["data"]["filename"] == "测试图床.jpg"
        other = api.ok("POST", MKDIR, {"name": "测试图床目录1", "parentID": "", "type": 1})
        moved = api.post(MOVE, {"fileIDs": [file_id], "toParentFileID": other["list"][0]["dirID"]})
        assert moved == {**moved, "code": 0, "message": "ok", "data": None}
        deleted = api.post(DELETE, {"fileIDs": [file_id]})
        assert deleted == {**deleted, "code": 0, "message": "ok", "data": None}
        assert json.dumps(api.ok("GET", DETAIL, {"fileID": dir_id}))  # the directory stays
    finally:
        api.close()
