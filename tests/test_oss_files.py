"""Image-bed directories and files: mkdir, list, detail, move, delete, links, isolation."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import Api, MiB, Server, jpeg_bytes
from imagebed import (
    DELETE,
    DETAIL,
    LIST,
    MKDIR,
    MOVE,
    blob_files,
    listing,
    md5,
    mkdir,
    names,
)

TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
ITEM_TYPES: dict[str, type] = {
    "fileId": str,
    "filename": str,
    "parentFileId": str,
    "type": int,
    "etag": str,
    "size": int,
    "status": int,
    "s3KeyFlag": str,
    "storageNode": str,
    "createAt": str,
    "updateAt": str,
    "downloadURL": str,
    "ossIndex": int,
    "totalTraffic": int,
    "parentFilename": str,
    "extension": str,
    "userSelfURL": str,
}


def epoch_of(api_time: str) -> int:
    """createAt (the server speaks +08:00) as a Unix timestamp, as startTime/endTime take it."""
    moment = datetime.strptime(api_time, "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=ZoneInfo("Asia/Shanghai")
    )
    return int(moment.timestamp())


def check_item(item: dict[str, Any]) -> None:
    assert set(item) == set(ITEM_TYPES), set(item) ^ set(ITEM_TYPES)
    for key, kind in ITEM_TYPES.items():
        assert type(item[key]) is kind, (key, item[key])
    assert TIME.match(item["createAt"]) and TIME.match(item["updateAt"])


# mkdir -------------------------------------------------------------------------------------


def test_mkdir_answers_each_directory_and_refuses_clashes(api: Api) -> None:
    made = api.ok("POST", MKDIR, {"name": "测试图床目录", "parentID": "", "type": 1})
    assert set(made) == {"list"} and len(made["list"]) == 1
    assert made["list"][0]["filename"] == "测试图床目录"
    parent = made["list"][0]["dirID"]
    assert isinstance(parent, str) and parent
    clash = api.post(MKDIR, {"name": "测试图床目录", "parentID": ""})
    assert clash["code"] == 1 and "name" in clash["message"]
    inner = api.ok("POST", MKDIR, {"name": ["a", "b"], "parentID": parent})["list"]
    assert [d["filename"] for d in inner] == ["a", "b"]
    # One name already taken: nothing of the request is made.
    partial = api.post(MKDIR, {"name": ["c", "a"], "parentID": parent})
    assert partial["code"] == 1 and "a" in partial["message"]
    twice = api.post(MKDIR, {"name": ["d", "d"], "parentID": parent})
    assert twice["code"] == 1 and "name" in twice["message"]
    assert names(api, parent) == {"a", "b"}
    # The same name in another directory is fine.
    assert api.ok("POST", MKDIR, {"name": "a", "parentID": inner[0]["dirID"]})


def test_mkdir_under_a_file_or_an_unknown_directory_is_5066(api: Api) -> None:
    file_id = api.oss_upload(jpeg_bytes(100), "not-a-dir.jpg")
    for parent in (file_id, "nope", "-1", "0"):
        answer = api.post(MKDIR, {"name": "x", "parentID": parent})
        assert answer["code"] == 5066 and "parentID" in answer["message"], answer
    assert names(api) == {"not-a-dir.jpg"}


# list --------------------------------------------------------------------------------------


def test_list_items_have_every_documented_field_with_its_type(api: Api, server: Server) -> None:
    folder = mkdir(api, "img_oss")
    data = jpeg_bytes(4321)
    file_id = api.oss_upload(data, "测试图床.JPG", parent=folder)
    sub = mkdir(api, "测试图床目录", parent=folder)
    page = api.ok("POST", LIST, {"parentFileId": folder, "limit": 100, "type": 1})
    assert set(page) == {"lastFileId", "fileList"} and page["lastFileId"] == "-1"
    for item in page["fileList"]:
        check_item(item)
    image, directory = page["fileList"]
    assert image["fileId"] == file_id and directory["fileId"] == sub
    assert image["type"] == 0 and directory["type"] == 1
    assert image["etag"] == md5(data) and image["size"] == len(data)
    assert image["status"] == 2 and image["extension"] == "jpg"
    assert image["parentFileId"] == folder and image["parentFilename"] == "img_oss"
    assert image["downloadURL"].startswith(server.url + "/")
    assert image["downloadURL"].endswith(f"{file_id}.jpg")
    assert image["userSelfURL"].startswith("http")
    assert directory["etag"] == "" and directory["size"] == 0 and directory["extension"] == ""
    assert directory["downloadURL"] == "" and directory["userSelfURL"] == ""
    root = api.ok("POST", LIST, {"limit": 100})["fileList"]
    assert root[0]["parentFileId"] == "" and root[0]["parentFilename"] == ""
    fetched = httpx.get(image["downloadURL"])
    assert fetched.status_code == 200 and fetched.content == data


def test_list_pages_with_a_cursor(api: Api) -> None:
    made = [mkdir(api, f"d{n:02}") for n in range(7)]
    seen: list[str] = []
    last = ""
    pages = 0
    while last != "-1":
        page = api.ok("POST", LIST, {"limit": 3, "lastFileId": last, "type": 1})
        assert isinstance(page["lastFileId"], str)
        seen += [f["fileId"] for f in page["fileList"]]
        last = page["lastFileId"]
        pages += 1
    assert seen == made and pages == 3
    exact = api.ok("POST", LIST, {"limit": 7})
    assert len(exact["fileList"]) == 7 and exact["lastFileId"] == "-1"
    hundred = [f"e{n:03}" for n in range(101 - 7)]
    api.ok("POST", MKDIR, {"name": hundred[:90]})
    api.ok("POST", MKDIR, {"name": hundred[90:]})
    first = api.ok("POST", LIST, {"limit": 100})
    assert len(first["fileList"]) == 100 and first["lastFileId"] != "-1"
    rest = api.ok("POST", LIST, {"limit": 100, "lastFileId": first["lastFileId"]})
    assert len(rest["fileList"]) == 1 and rest["lastFileId"] == "-1"


def test_the_cursor_holds_while_files_come_and_go(api: Api) -> None:
    made = [mkdir(api, f"s{n}") for n in range(6)]
    first = api.ok("POST", LIST, {"limit": 2})
    assert [f["fileId"] for f in first["fileList"]] == made[:2]
    # Between pages: one already seen and one not yet seen go, new ones come.
    api.ok("POST", DELETE, {"fileIDs": [made[0], made[3]]})
    late = [mkdir(api, "late1"), mkdir(api, "late2")]
    # Even the entry the cursor names may go.
    api.ok("POST", DELETE, {"fileIDs": [made[1]]})
    rest: list[str] = []
    last = first["lastFileId"]
    while last != "-1":
        page = api.ok("POST", LIST, {"limit": 2, "lastFileId": last})
        rest += [f["fileId"] for f in page["fileList"]]
        last = page["lastFileId"]
    assert rest == [made[2], made[4], made[5], *late]


@pytest.mark.parametrize(
    "limit", [0, -1, 101, 1000, "x", 1.5, True, [5], {"a": 1}, "", "10a", 2**70]
)
def test_list_limit_must_be_1_to_100(api: Api, limit: Any) -> None:
    answer = api.post(LIST, {"limit": limit, "type": 1})
    if limit == "":
        assert answer["code"] == 0  # left empty: the default page
        return
    assert answer["code"] == 1 and "limit" in answer["message"], answer


def test_list_filters_by_start_and_end_time(api: Api) -> None:
    older = mkdir(api, "older")
    time.sleep(1.1)  # the filters work in whole seconds
    newer = mkdir(api, "newer")
    entries = {e["fileId"]: e for e in listing(api)}
    t_old, t_new = epoch_of(entries[older]["createAt"]), epoch_of(entries[newer]["createAt"])
    assert t_old < t_new

    def ids(**filters: int) -> list[str]:
        return [e["fileId"] for e in api.ok("POST", LIST, {"limit": 100, **filters})["fileList"]]

    assert ids(startTime=t_new) == [newer]
    # endTime names a second, and a file made during that second belongs to it.
    assert ids(endTime=t_old) == [older]
    assert ids(startTime=t_old, endTime=t_new) == [older, newer]
    assert ids(startTime=t_new, endTime=t_new) == [newer]
    assert ids(startTime=t_new + 3600) == []
    assert ids(endTime=t_old - 3600) == []
    assert ids(startTime=0) == [older, newer]
    refused = api.post(LIST, {"limit": 10, "startTime": t_new, "endTime": t_old})
    assert refused["code"] == 1 and "endTime" in refused["message"]


def test_list_of_an_unknown_or_file_parent_is_5066(api: Api) -> None:
    file_id = api.oss_upload(jpeg_bytes(100), "leaf.jpg")
    for parent in (file_id, "nope", "-1", "../..", "0"):
        answer = api.post(LIST, {"parentFileId": parent, "limit": 10})
        assert answer["code"] == 5066 and "parentFileId" in answer["message"], answer


# detail ------------------------------------------------------------------------------------


def test_detail_matches_the_list_entry(api: Api) -> None:
    folder = mkdir(api, "detail-dir")
    file_id = api.oss_upload(jpeg_bytes(2000), "detail.png", parent=folder)
    listed = api.ok("POST", LIST, {"parentFileId": folder, "limit": 10})["fileList"][0]
    detail = api.ok("GET", DETAIL, {"fileID": file_id})
    check_item(detail)
    assert detail == listed
    directory = api.ok("GET", DETAIL, {"fileID": folder})
    check_item(directory)
    assert directory["type"] == 1 and directory["parentFileId"] == ""


def test_detail_of_an_unknown_file_is_5066(api: Api) -> None:
    for file_id in ("nope", "-1", "0", "../etc/passwd", "%00"):
        answer = api.get(DETAIL, {"fileID": file_id})
        assert answer["code"] == 5066 and answer["data"] is None
        assert "fileID" in answer["message"]


# move --------------------------------------------------------------------------------------


def test_move_into_a_directory_and_back_to_the_root(api: Api) -> None:
    target = mkdir(api, "ymjew")
    files = [api.oss_upload(jpeg_bytes(100), f"m{n}.gif") for n in range(3)]
    sub = mkdir(api, "sub")
    assert api.post(MOVE, {"fileIDs": [*files, sub], "toParentFileID": target})["data"] is None
    assert {e["fileId"] for e in listing(api, target)} == {*files, sub}
    assert names(api) == {"ymjew"}
    moved = api.ok("GET", DETAIL, {"fileID": files[0]})
    assert moved["parentFileId"] == target and moved["parentFilename"] == "ymjew"
    api.ok("POST", MOVE, {"fileIDs": files[:2], "toParentFileID": ""})
    assert names(api) == {"ymjew", "m0.gif", "m1.gif"}
    # Moving to where an entry already is changes nothing and is fine.
    api.ok("POST", MOVE, {"fileIDs": [files[2]], "toParentFileID": target})
    api.ok("POST", MOVE, {"fileIDs": [files[0]]})  # no target: the root


def test_move_refuses_a_directory_into_itself_or_below(api: Api) -> None:
    top = mkdir(api, "top")
    middle = mkdir(api, "middle", top)
    bottom = mkdir(api, "bottom", middle)
    for target in (top, middle, bottom):
        answer = api.post(MOVE, {"fileIDs": [top], "toParentFileID": target})
        assert answer["code"] == 1 and "toParentFileID" in answer["message"], answer
    answer = api.post(MOVE, {"fileIDs": [middle], "toParentFileID": bottom})
    assert answer["code"] == 1
    assert [e["fileId"] for e in listing(api)] == [top]
    assert [e["fileId"] for e in listing(api, middle)] == [bottom]
    api.ok("POST", MOVE, {"fileIDs": [bottom], "toParentFileID": ""})
    api.ok("POST", MOVE, {"fileIDs": [top], "toParentFileID": bottom})
    assert [e["fileId"] for e in listing(api)] == [bottom]


def test_move_is_all_or_nothing(api: Api) -> None:
    target = mkdir(api, "target")
    clash = api.oss_upload(jpeg_bytes(100), "same.jpg", parent=target)
    mover = api.oss_upload(jpeg_bytes(100), "same.jpg")
    other = api.oss_upload(jpeg_bytes(100), "fine.jpg")
    answer = api.post(MOVE, {"fileIDs": [other, mover], "toParentFileID": target})
    assert answer["code"] == 1 and "same.jpg" in answer["message"]
    unknown = api.post(MOVE, {"fileIDs": [other, "nope"], "toParentFileID": target})
    assert unknown["code"] == 5066 and "fileIDs" in unknown["message"]
    assert [e["fileId"] for e in listing(api, target)] == [clash]
    folder_a, folder_b = mkdir(api, "fa"), mkdir(api, "fb")
    twins = [api.oss_upload(jpeg_bytes(100), "twin.jpg", parent=f) for f in (folder_a, folder_b)]
    answer = api.post(MOVE, {"fileIDs": twins, "toParentFileID": ""})
    assert answer["code"] == 1 and "fileIDs" in answer["message"]
    assert names(api) == {"target", "same.jpg", "fine.jpg", "fa", "fb"}


def test_move_takes_at_most_100(api: Api) -> None:
    target = mkdir(api, "many")
    made = api.ok("POST", MKDIR, {"name": [f"x{n}" for n in range(100)]})["list"]
    ids = [d["dirID"] for d in made]
    too_many = api.post(MOVE, {"fileIDs": [*ids, target], "toParentFileID": target})
    assert too_many["code"] == 1 and "fileIDs" in too_many["message"]
    api.ok("POST", MOVE, {"fileIDs": ids, "toParentFileID": target})
    assert len(listing(api, target)) == 100
    empty = api.post(MOVE, {"fileIDs": [], "toParentFileID": target})
    assert empty["code"] == 1 and "fileIDs" in empty["message"]


# delete ------------------------------------------------------------------------------------


def test_delete_a_directory_takes_everything_in_it(api: Api, server: Server) -> None:
    top = mkdir(api, "tree")
    mid = mkdir(api, "mid", top)
    low = mkdir(api, "low", mid)
    data = [jpeg_bytes(5000 + n) for n in range(3)]
    files = [
        api.oss_upload(d, f"f{n}.jpg", parent=p)
        for n, (d, p) in enumerate(zip(data, (top, mid, low), strict=True))
    ]
    keep = api.oss_upload(jpeg_bytes(100), "keep.jpg")
    links = [api.ok("GET", DETAIL, {"fileID": f})["downloadURL"] for f in files]
    assert all(blob_files(server, md5(d)) for d in data)
    assert api.post(DELETE, {"fileIDs": [top]})["data"] is None
    for gone in (top, mid, low, *files):
        assert api.get(DETAIL, {"fileID": gone})["code"] == 5066
    assert [e["fileId"] for e in listing(api)] == [keep]
    assert all(httpx.get(link).status_code == 404 for link in links)
    assert all(blob_files(server, md5(d)) == [] for d in data)


def test_delete_is_all_or_nothing_and_takes_at_most_100(api: Api) -> None:
    made = [
        d["dirID"]
        for batch in (range(100), range(100, 101))
        for d in api.ok("POST", MKDIR, {"name": [f"z{n}" for n in batch]})["list"]
    ]
    too_many = api.post(DELETE, {"fileIDs": made})
    assert too_many["code"] == 1 and "fileIDs" in too_many["message"]
    unknown = api.post(DELETE, {"fileIDs": [made[0], "nope"]})
    assert unknown["code"] == 5066 and "fileIDs" in unknown["message"]
    assert len(listing(api)) == 101
    api.ok("POST", DELETE, {"fileIDs": made[:100]})
    # The same ID twice, or a child together with its directory, is no problem.
    folder = mkdir(api, "with-child")
    child = mkdir(api, "child", folder)
    api.ok("POST", DELETE, {"fileIDs": [made[100], made[100], child, folder]})
    assert listing(api) == []


def test_deleted_bytes_stay_while_another_file_uses_them(api: Api, server: Server) -> None:
    data = jpeg_bytes(3 * MiB // 2)
    first = api.oss_upload(data, "one.jpg")
    second = api.oss_upload(data, "two.jpg")
    assert len(blob_files(server, md5(data))) == 1
    api.ok("POST", DELETE, {"fileIDs": [first]})
    url = api.ok("GET", DETAIL, {"fileID": second})["downloadURL"]
    assert httpx.get(url).content == data
    api.ok("POST", DELETE, {"fileIDs": [second]})
    assert blob_files(server, md5(data)) == []


# Another user's IDs ------------------------------------------------------------------------


def _same(theirs: dict[str, Any], nobodys: dict[str, Any], mine: str, unknown: str) -> None:
    assert theirs["code"] == nobodys["code"] and theirs["code"] != 0, (theirs, nobodys)
    assert theirs["message"].replace(mine, "ID") == nobodys["message"].replace(unknown, "ID")
    assert theirs["data"] is None and nobodys["data"] is None


def test_another_users_ids_behave_like_unknown_ones(api: Api, other_api: Api) -> None:
    folder = mkdir(api, "private")
    file_id = api.oss_upload(jpeg_bytes(1000), "private.jpg", parent=folder)
    own = mkdir(other_api, "own")
    own_file = other_api.oss_upload(jpeg_bytes(1000), "own.jpg")
    fake_dir, fake_file = "z" + folder[1:], "z" + file_id[1:]
    calls: list[tuple[str, str, dict[str, Any], str, str]] = [
        ("GET", DETAIL, {"fileID": "ID"}, file_id, fake_file),
        ("GET", DETAIL, {"fileID": "ID"}, folder, fake_dir),
        ("POST", LIST, {"parentFileId": "ID", "limit": 10}, folder, fake_dir),
        ("POST", MKDIR, {"name": "intrude", "parentID": "ID"}, folder, fake_dir),
        ("POST", MOVE, {"fileIDs": ["ID"], "toParentFileID": own}, file_id, fake_file),
        ("POST", MOVE, {"fileIDs": [own_file], "toParentFileID": "ID"}, folder, fake_dir),
        ("POST", DELETE, {"fileIDs": ["ID"]}, file_id, fake_file),
        ("POST", DELETE, {"fileIDs": ["ID", own_file]}, folder, fake_dir),
        (
            "POST",
            "/upload/v1/oss/file/create",
            {"parentFileID": "ID", "filename": "in.jpg", "etag": "0" * 32, "size": 5},
            folder,
            fake_dir,
        ),
    ]
    for method, path, template, mine, unknown in calls:

        def send(
            value: str, template: dict[str, Any] = template, method: str = method, path: str = path
        ) -> dict[str, Any]:
            body = {
                k: (
                    [value if i == "ID" else i for i in v]
                    if isinstance(v, list)
                    else (value if v == "ID" else v)
                )
                for k, v in template.items()
            }
            return other_api.get(path, body) if method == "GET" else other_api.post(path, body)

        _same(send(mine), send(unknown), mine, unknown)
    # Nothing of the owner's changed.
    assert api.ok("GET", DETAIL, {"fileID": file_id})["parentFileId"] == folder
    assert names(api, folder) == {"private.jpg"}
    assert names(other_api) == {"own", "own.jpg"}


def test_custom_domain_shapes_user_self_url(api: Api, server: Server) -> None:
    done = server.cli("user", "set", api.creds["name"], "--domain", "img.example.com")
    assert done.returncode == 0, done.stdout + done.stderr
    file_id = api.oss_upload(jpeg_bytes(100), "branded.webp")
    entry = api.ok("GET", DETAIL, {"fileID": file_id})
    assert entry["userSelfURL"] == f"http://img.example.com/{entry['downloadURL'].split('/', 3)[3]}"
    assert entry["downloadURL"].startswith(server.url)
