"""The envelope on every answer, and the lenient input real clients send."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import Api, Server, jpeg_bytes
from imagebed import (
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
    names,
    query,
)

ENVELOPE_KEYS = {"code", "message", "data", "x-traceID"}


@pytest.fixture(scope="module")
def user(server: Server) -> Iterator[Api]:
    client = server.client(server.take_user())
    yield client
    client.close()


def check_envelope(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert isinstance(body["code"], int) and isinstance(body["message"], str)
    assert isinstance(body["x-traceID"], str) and body["x-traceID"]
    assert response.headers["x-traceID"] == body["x-traceID"]
    if body["code"] == 0:
        assert body["message"] == "ok"
    else:
        assert body["data"] is None and body["message"]
    return body


# The envelope ------------------------------------------------------------------------------


def test_success_and_failure_answers_share_one_envelope(user: Api) -> None:
    ok = check_envelope(user.http.post(LIST, json={"limit": 1}, headers=user.headers))
    assert ok["code"] == 0 and isinstance(ok["data"], dict)
    bad = check_envelope(user.http.post(LIST, json={"limit": "x"}, headers=user.headers))
    assert bad["code"] == 1 and "limit" in bad["message"]
    missing = check_envelope(user.http.get(DETAIL, params={"fileID": "nope"}, headers=user.headers))
    assert missing["code"] == 5066
    unauthorized = check_envelope(user.http.post(LIST, json={}))
    assert unauthorized["code"] == 401
    deleted = check_envelope(user.http.post(DELETE, json={"fileIDs": []}, headers=user.headers))
    assert deleted["code"] == 1 and "fileIDs" in deleted["message"]


def test_data_is_null_on_success_without_a_result(user: Api) -> None:
    folder = mkdir(user, "null-data")
    body = check_envelope(user.http.post(DELETE, json={"fileIDs": [folder]}, headers=user.headers))
    assert body["code"] == 0 and body["data"] is None


def test_trace_ids_are_unique_per_answer(user: Api) -> None:
    seen = {
        check_envelope(user.http.post(LIST, json={"limit": 1}, headers=user.headers))["x-traceID"]
        for _ in range(5)
    }
    assert len(seen) == 5


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/oss/file/nope"),
        ("GET", "/api/v9/anything"),
        ("DELETE", "/upload/v1/oss/file/unknown"),
        ("PUT", "/upload/v3/x/y/z"),
        ("OPTIONS", LIST),
        ("OPTIONS", "/api/v1/nope"),
        ("GET", "/upload/slice/abc/1"),
        ("PATCH", "/upload/slice/abc/1"),
    ],
)
def test_unknown_routes_and_methods_answer_with_the_envelope(
    user: Api, method: str, path: str
) -> None:
    response = user.http.request(method, path, headers=user.headers)
    assert response.status_code in (200, 404, 405), response.text
    body = check_envelope(response, response.status_code)
    assert body["code"] != 0 and body["data"] is None


def test_an_internal_error_is_an_envelope_and_the_connection_survives(
    fresh_server: Server,
) -> None:
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())
    try:
        # Break the database behind the server's back: the next create fails unexpectedly.
        query(fresh_server, "DROP TABLE upload_sessions")
        data = jpeg_bytes(1000)
        request = {"filename": "a.jpg", "etag": md5(data), "size": len(data), "type": 1}
        response = api.http.post(CREATE, json=request, headers=api.headers)
        body = check_envelope(response)
        assert body["code"] == 1 and "Traceback" not in body["message"]
        assert "upload_sessions" not in body["message"]  # no internals leak to the client
        # A keep-alive client goes on using the same connection.
        assert api.post(LIST, {"limit": 1})["code"] == 0
    finally:
        api.close()


# Lenient input -----------------------------------------------------------------------------


def test_urlencoded_body_labelled_json_is_understood(user: Api) -> None:
    body = check_envelope(
        user.http.post(
            MKDIR,
            content="name=form-labelled-json&parentID=&type=1",
            headers={**user.headers, "Content-Type": "application/json"},
        )
    )
    assert body["code"] == 0 and body["data"]["list"][0]["filename"] == "form-labelled-json"


def test_plain_urlencoded_and_json_labelled_form_are_understood(user: Api) -> None:
    form = check_envelope(
        user.http.post(MKDIR, data={"name": "plain-form", "type": "1"}, headers=user.headers)
    )
    assert form["code"] == 0
    labelled = check_envelope(
        user.http.post(
            MKDIR,
            content=json.dumps({"name": "json-labelled-form"}),
            headers={**user.headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    )
    assert labelled["code"] == 0
    assert {"plain-form", "json-labelled-form"} <= names(user)


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_multipart_body_is_understood(user: Api) -> None:
    content, content_type = multipart({"name": "from-multipart", "parentID": "", "type": "1"})
    body = check_envelope(
        user.http.post(
            MKDIR, content=content, headers={**user.headers, "Content-Type": content_type}
        )
    )
    assert body["code"] == 0 and body["data"]["list"][0]["filename"] == "from-multipart"


def test_broken_multipart_is_refused_cleanly(user: Api) -> None:
    response = user.http.post(
        MKDIR,
        content=b"--x\r\nnot really multipart",
        headers={**user.headers, "Content-Type": "multipart/form-data; boundary=x"},
    )
    body = check_envelope(response)
    assert body["code"] == 1


def test_query_parameters_on_post_and_body_on_get(user: Api) -> None:
    folder = mkdir(user, "query-and-body")
    on_post = check_envelope(
        user.http.post(MKDIR, params={"name": "child", "parentID": folder}, headers=user.headers)
    )
    assert on_post["code"] == 0
    child = on_post["data"]["list"][0]["dirID"]
    on_get = check_envelope(
        user.http.request(
            "GET", DETAIL, content=json.dumps({"fileID": child}), headers=user.headers
        )
    )
    assert on_get["code"] == 0 and on_get["data"]["parentFileId"] == folder


def test_body_wins_over_query_for_the_same_key_in_any_body_format(user: Api) -> None:
    for content, content_type in [
        (json.dumps({"limit": 1}), "application/json"),
        ("limit=1", "application/x-www-form-urlencoded"),
        ("limit=1", "application/json"),
    ]:
        body = check_envelope(
            user.http.post(
                LIST,
                params={"limit": "nonsense"},
                content=content,
                headers={**user.headers, "Content-Type": content_type},
            )
        )
        assert body["code"] == 0, (content_type, body)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", MKDIR), ("PUT", MKDIR), ("DELETE", MKDIR), ("PATCH", MKDIR), ("POST", DETAIL)],
)
def test_any_method_reaches_an_endpoint(user: Api, method: str, path: str) -> None:
    if path == MKDIR:
        params: dict[str, Any] = {"name": f"by-{method.lower()}"}
    else:
        params = {"fileID": mkdir(user, f"detail-by-{method.lower()}")}
    response = user.http.request(method, path, params=params, headers=user.headers)
    body = check_envelope(response)
    assert body["code"] == 0, body


def test_keys_in_any_case(user: Api) -> None:
    parent = mkdir(user, "key-case")
    data = jpeg_bytes(3000)
    made = user.ok(
        "POST",
        CREATE,
        {"PARENTFILEID": parent, "FileName": "k.jpg", "ETAG": md5(data), "Size": len(data)},
    )
    pre = made["preuploadID"]
    url = user.ok("POST", UPLOAD_URL, {"preuploadId": pre, "sliceno": 1})["presignedURL"]
    assert httpx.put(url, content=data).status_code == 200
    assert user.ok("POST", PARTS, {"PreUploadID": pre})["parts"][0]["etag"] == md5(data)
    file_id = user.ok("POST", COMPLETE, {"preuploadid": pre})["fileID"]
    for key in ("fileID", "fileId", "fileid", "FILEID"):
        assert user.ok("GET", DETAIL, {key: file_id})["fileId"] == file_id
    for key in ("parentFileId", "parentFileID", "parentfileid"):
        listed = user.ok("POST", LIST, {key: parent, "limit": 10})["fileList"]
        assert [f["fileId"] for f in listed] == [file_id]
    mkdir(user, "second", parent)
    first = user.ok("POST", LIST, {"parentFileID": parent, "limit": 1})
    for key in ("lastFileId", "lastFileID", "LASTFILEID"):
        rest = user.ok("POST", LIST, {"parentFileID": parent, "limit": 1, key: first["lastFileId"]})
        assert rest["fileList"][0]["filename"] == "second"
    user.ok("POST", MOVE, {"FileIDs": [file_id], "toparentfileid": ""})
    assert user.ok("GET", DETAIL, {"fileID": file_id})["parentFileId"] == ""
    user.ok("POST", DELETE, {"FILEIDS": [file_id]})


def test_numbers_as_strings_and_strings_as_numbers(user: Api) -> None:
    data = jpeg_bytes(2000)
    made = user.ok(
        "POST",
        CREATE,
        {"filename": "n.jpg", "etag": md5(data), "size": f" {len(data)} ", "type": "1"},
    )
    url = user.ok("POST", UPLOAD_URL, {"preuploadID": made["preuploadID"], "sliceNo": "1"})
    assert httpx.put(url["presignedURL"], content=data).status_code == 200
    assert user.ok("POST", COMPLETE, {"preuploadID": made["preuploadID"]})["completed"] is True
    folder = user.ok("POST", MKDIR, {"name": 12345, "type": "1"})["list"][0]
    assert folder["filename"] == "12345" and isinstance(folder["dirID"], str)
    page = user.ok("POST", LIST, {"limit": "2", "type": 1.0, "startTime": "0"})
    assert len(page["fileList"]) == 2


def test_name_as_string_or_list_in_mkdir(user: Api) -> None:
    parent = mkdir(user, "names-parent")
    single = user.ok("POST", MKDIR, {"name": "one", "parentID": parent, "type": 1})["list"]
    assert [d["filename"] for d in single] == ["one"]
    several = user.ok("POST", MKDIR, {"name": ["two", "three", "四"], "parentID": parent})["list"]
    assert [d["filename"] for d in several] == ["two", "three", "四"]
    assert len({d["dirID"] for d in several}) == 3
    as_text = user.ok("POST", MKDIR, {"name": '["five", "six"]', "parentID": parent})["list"]
    assert [d["filename"] for d in as_text] == ["five", "six"]
    repeated = user.http.post(
        MKDIR,
        content="name=seven&name=eight&parentID=" + parent,
        headers={**user.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert [d["filename"] for d in check_envelope(repeated)["data"]["list"]] == ["seven", "eight"]
    assert names(user, parent) == {"one", "two", "three", "四", "five", "six", "seven", "eight"}


def test_type_may_be_left_out_and_unknown_fields_are_ignored(user: Api) -> None:
    folder = user.ok("POST", MKDIR, {"name": "no-type", "whatever": {"x": [1]}, "extra": None})
    dir_id = folder["list"][0]["dirID"]
    assert user.ok("POST", LIST, {"parentFileId": dir_id, "limit": 5, "foo": "bar"}) == {
        "lastFileId": "-1",
        "fileList": [],
    }


def test_a_json_body_with_a_byte_order_mark_is_understood(user: Api) -> None:
    body = check_envelope(
        user.http.post(
            MKDIR,
            content="\ufeff" + json.dumps({"name": "with-bom"}),
            headers={**user.headers, "Content-Type": "application/json"},
        )
    )
    assert body["code"] == 0 and body["data"]["list"][0]["filename"] == "with-bom"


def test_ids_in_answers_are_strings_and_times_have_the_real_format(user: Api) -> None:
    data = jpeg_bytes(1500)
    made = create(user, data, "types.jpg")
    assert isinstance(made["preuploadID"], str) and made["fileID"] == ""
    assert made["reuse"] is False and isinstance(made["sliceSize"], int)
    entry = user.ok("POST", LIST, {"limit": 100})["fileList"][0]
    assert isinstance(entry["fileId"], str) and entry["parentFileId"] == ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", entry["createAt"])
