"""The cloud-disk file API: mkdir, both listings, detail, infos, move, rename, the trash, delete,
user info, and the real service's rate limit on the old listing."""

from __future__ import annotations

import re

from conftest import Api, Server
from diskkit import (
    DELETE,
    DETAIL,
    INFOS,
    LIST_V1,
    LIST_V2,
    MKDIR,
    MOVE,
    NAME,
    RECOVER,
    RECOVER_BY_PATH,
    RENAME,
    TRASH,
    USER_INFO,
    blob,
    download,
    listing,
    mkdir,
    names,
    upload_v1,
)

V2_ITEM_KEYS = {
    "fileId",
    "filename",
    "parentFileId",
    "type",
    "etag",
    "size",
    "category",
    "status",
    "punishFlag",
    "s3KeyFlag",
    "storageNode",
    "trashed",
    "createAt",
    "updateAt",
}
TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def test_mkdir_and_list_v2_shape(api: Api) -> None:
    folder = mkdir(api, "相册")
    clash = api.post(MKDIR, {"name": "相册", "parentID": 0})
    assert clash["code"] == 1 and clash["message"].startswith("name")
    inner = mkdir(api, "inner", folder)
    song = upload_v1(api, b"ID3 not really", "song.mp3", folder)
    picture = upload_v1(api, b"\xff\xd8 not really", "pic.JPG", folder)
    page = api.ok("GET", LIST_V2, {"parentFileId": folder, "limit": 100})
    assert page["lastFileId"] == -1
    items = {e["filename"]: e for e in page["fileList"]}
    assert set(items) == {"inner", "song.mp3", "pic.JPG"}
    for item in items.values():
        assert set(item) == V2_ITEM_KEYS
        assert isinstance(item["fileId"], int) and item["parentFileId"] == folder
        assert TIME.match(item["createAt"]) and TIME.match(item["updateAt"])
        assert item["trashed"] == 0
    assert (items["inner"]["type"], items["inner"]["size"], items["inner"]["etag"]) == (1, 0, "")
    assert items["inner"]["fileId"] == inner and items["inner"]["category"] == 0
    assert items["song.mp3"]["category"] == 1 and items["song.mp3"]["fileId"] == song
    assert items["pic.JPG"]["category"] == 3 and items["pic.JPG"]["fileId"] == picture
    assert items["song.mp3"]["size"] == len(b"ID3 not really") and items["song.mp3"]["type"] == 0
    root = names(api)
    assert root["相册"]["fileId"] == folder and root["相册"]["parentFileId"] == 0


def test_list_v2_pages_with_a_stable_cursor(api: Api) -> None:
    folder = mkdir(api, "many")
    made = [mkdir(api, f"d{i:02}", folder) for i in range(7)]
    first = api.ok("GET", LIST_V2, {"parentFileId": folder, "limit": 3})
    assert [e["fileId"] for e in first["fileList"]] == made[:3]
    assert first["lastFileId"] == made[2]
    # Entries removed and added between pages neither repeat nor hide the others.
    api.ok("POST", TRASH, {"fileIDs": [made[0]]})
    api.ok("POST", DELETE, {"fileIDs": [made[0]]})
    late = mkdir(api, "late", folder)
    second = api.ok(
        "GET", LIST_V2, {"parentFileId": folder, "limit": 3, "lastFileId": first["lastFileId"]}
    )
    assert [e["fileId"] for e in second["fileList"]] == made[3:6]
    third = api.ok(
        "GET", LIST_V2, {"parentFileId": folder, "limit": 3, "lastFileId": second["lastFileId"]}
    )
    assert [e["fileId"] for e in third["fileList"]] == [made[6], late]
    assert third["lastFileId"] == -1
    # A limit that ends exactly at the last entry still says -1.
    exact = api.ok("GET", LIST_V2, {"parentFileId": folder, "limit": 7})
    assert len(exact["fileList"]) == 7 and exact["lastFileId"] == -1


def test_search_modes(api: Api) -> None:
    folder = mkdir(api, "search-root")
    sub = mkdir(api, "sub", folder)
    upload_v1(api, b"1", "Holiday Photo 2024.png", sub)
    upload_v1(api, b"2", "holiday-notes.txt", folder)
    upload_v1(api, b"3", "100%_done.txt", folder)
    fuzzy = api.ok("GET", LIST_V2, {"parentFileId": 12345, "limit": 100, "searchData": "HOLIDAY"})
    assert {e["filename"] for e in fuzzy["fileList"]} == {
        "Holiday Photo 2024.png",
        "holiday-notes.txt",
    }
    words = api.ok("GET", LIST_V2, {"parentFileId": 0, "limit": 100, "searchData": "photo 2024"})
    assert [e["filename"] for e in words["fileList"]] == ["Holiday Photo 2024.png"]
    exact = api.ok(
        "GET",
        LIST_V2,
        {"parentFileId": 0, "limit": 100, "searchData": "holiday-notes.txt", "searchMode": 1},
    )
    assert [e["filename"] for e in exact["fileList"]] == ["holiday-notes.txt"]
    partial_exact = api.ok(
        "GET", LIST_V2, {"parentFileId": 0, "limit": 100, "searchData": "holiday", "searchMode": 1}
    )
    assert partial_exact["fileList"] == []
    # LIKE wildcards in the search are plain characters.
    percent = api.ok("GET", LIST_V2, {"parentFileId": 0, "limit": 100, "searchData": "%"})
    assert [e["filename"] for e in percent["fileList"]] == ["100%_done.txt"]
    underscore = api.ok("GET", LIST_V1, {"searchData": "_d", "limit": 100})
    assert [e["filename"] for e in underscore["fileList"]] == ["100%_done.txt"]


def test_list_v1_orders_pages_and_the_trash(api: Api) -> None:
    folder = mkdir(api, "v1")
    ids = {
        name: upload_v1(api, blob(size), name, folder)
        for name, size in (("b.txt", 30), ("a.txt", 10), ("c.txt", 20))
    }
    by_name = api.ok(
        "GET",
        LIST_V1,
        {
            "parentFileId": folder,
            "page": 1,
            "limit": 2,
            "orderBy": "file_name",
            "orderDirection": "asc",
        },
    )
    assert by_name["total"] == 3
    assert [e["filename"] for e in by_name["fileList"]] == ["a.txt", "b.txt"]
    item = by_name["fileList"][0]
    assert item["fileID"] == ids["a.txt"] and item["parentName"] == "v1"
    assert item["parentFileId"] == folder and item["contentType"] == "0"
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0800 CST$", item["createAt"])
    page2 = api.ok(
        "GET",
        LIST_V1,
        {
            "parentFileId": folder,
            "page": 2,
            "limit": 2,
            "orderBy": "file_name",
            "orderDirection": "asc",
        },
    )
    assert [e["filename"] for e in page2["fileList"]] == ["c.txt"]
    by_size = api.ok(
        "GET",
        LIST_V1,
        {
            "parentFileId": folder,
            "page": 1,
            "limit": 10,
            "orderBy": "size",
            "orderDirection": "desc",
        },
    )
    assert [e["filename"] for e in by_size["fileList"]] == ["b.txt", "c.txt", "a.txt"]
    by_id = api.ok("GET", LIST_V1, {"parentFileId": folder, "orderBy": "file_id", "page": 1})
    assert [e["fileID"] for e in by_id["fileList"]] == sorted(ids.values())
    api.ok("POST", TRASH, {"fileIDs": [ids["b.txt"]]})
    live = api.ok("GET", LIST_V1, {"parentFileId": folder, "page": 1, "limit": 10})
    assert {e["filename"] for e in live["fileList"]} == {"a.txt", "c.txt"}
    trash = api.ok("GET", LIST_V1, {"parentFileId": 0, "page": 1, "limit": 10, "trashed": True})
    assert [e["fileID"] for e in trash["fileList"]] == [ids["b.txt"]] and trash["total"] == 1
    bad_order = api.get(LIST_V1, {"parentFileId": folder, "orderBy": "secret", "page": 1})
    assert bad_order["code"] == 1 and bad_order["message"].startswith("orderBy")


def test_detail_and_infos(api: Api, other_api: Api) -> None:
    folder = mkdir(api, "sized")
    sub = mkdir(api, "sub", folder)
    one = upload_v1(api, blob(100), "one.bin", folder)
    upload_v1(api, blob(250), "two.bin", sub)
    info = api.ok("GET", DETAIL, {"fileID": one})
    assert info["fileID"] == one and info["filename"] == "one.bin" and info["type"] == 0
    assert info["size"] == 100 and len(info["etag"]) == 32 and info["status"] == 2
    assert info["parentFileID"] == folder and info["trashed"] == 0 and TIME.match(info["createAt"])
    folder_info = api.ok("GET", DETAIL, {"fileId": folder})
    assert folder_info["type"] == 1 and folder_info["size"] == 350 and folder_info["etag"] == ""
    many = api.ok("POST", INFOS, {"fileIds": [one, folder, 999_999_999, one]})
    assert [e["fileId"] for e in many["list"]] == [one, folder] and many["fileList"] == many["list"]
    assert set(many["list"][0]) == V2_ITEM_KEYS
    assert other_api.ok("POST", INFOS, {"fileIds": [one, folder]})["list"] == []
    assert other_api.get(DETAIL, {"fileID": one})["code"] == 5066


def test_move(api: Api) -> None:
    a = mkdir(api, "move-a")
    b = mkdir(api, "move-b", a)
    f1 = upload_v1(api, b"1", "f1.txt", a)
    f2 = upload_v1(api, b"2", "f2.txt", a)
    api.ok("POST", MOVE, {"fileIDs": [f1, f2], "toParentFileID": b})
    assert set(names(api, b)) == {"f1.txt", "f2.txt"} and set(names(api, a)) == {"move-b"}
    into_self = api.post(MOVE, {"fileIDs": [a], "toParentFileID": b})
    assert into_self["code"] == 1 and into_self["message"].startswith("toParentFileID")
    upload_v1(api, b"other", "f1.txt", a)
    clash = api.post(MOVE, {"fileIDs": [f1, f2], "toParentFileID": a})
    assert clash["code"] == 1 and "f1.txt" in clash["message"]
    assert set(names(api, b)) == {"f1.txt", "f2.txt"}  # all or nothing
    api.ok("POST", MOVE, {"fileIDs": [str(f2)], "toParentFileID": "0"})
    assert "f2.txt" in names(api)
    api.ok("POST", TRASH, {"fileIDs": [b]})
    into_trash = api.post(MOVE, {"fileIDs": [f2], "toParentFileID": b})
    assert into_trash["code"] == 5066
    out_of_trash = api.post(MOVE, {"fileIDs": [f1], "toParentFileID": 0})
    assert out_of_trash["code"] == 5066  # f1 lies in a trashed directory


def test_rename_one_and_many(api: Api) -> None:
    folder = mkdir(api, "ren")
    a = upload_v1(api, b"a", "a.txt", folder)
    b = upload_v1(api, b"b", "b.txt", folder)
    api.ok("PUT", NAME, {"fileId": a, "fileName": "renamed.mp4"})
    listed = names(api, folder)
    assert listed["renamed.mp4"]["fileId"] == a and listed["renamed.mp4"]["category"] == 2
    clash = api.call("PUT", NAME, json={"fileId": a, "fileName": "b.txt"})
    assert clash["code"] == 1 and clash["message"].startswith("fileName")
    same = api.call("PUT", NAME, json={"fileId": a, "fileName": "renamed.mp4"})
    assert same["code"] == 0
    bad = api.call("PUT", NAME, json={"fileId": a, "fileName": "x/y"})
    assert bad["code"] == 1 and bad["message"].startswith("fileName")
    many = api.ok(
        "POST",
        RENAME,
        {"renameList": [f"{a}|first.txt", f"{b}|second.txt", "999999999|x.txt", f"{b}|a:b"]},
    )
    assert [s["fileID"] for s in many["successList"]] == [a, b]
    assert all(TIME.match(s["updateAt"]) for s in many["successList"])
    assert [f["fileID"] for f in many["failList"]] == [999999999, b]
    assert all(f["message"] for f in many["failList"])
    assert set(names(api, folder)) == {"first.txt", "second.txt"}
    swap = api.ok("POST", RENAME, {"renameList": [f"{a}|second.txt"]})
    assert swap["successList"] == [] and swap["failList"][0]["fileID"] == a
    malformed = api.post(RENAME, {"renameList": ["no-bar"]})
    assert malformed["code"] == 1 and malformed["message"].startswith("renameList")
    too_many = api.post(RENAME, {"renameList": [f"{a}|n{i}.txt" for i in range(31)]})
    assert too_many["code"] == 1 and too_many["message"].startswith("renameList")


def test_trash_recover_and_delete(api: Api) -> None:
    folder = mkdir(api, "bin-test")
    inside = upload_v1(api, blob(40), "inside.txt", folder)
    alone = upload_v1(api, blob(60), "alone.txt")
    used = api.ok("GET", USER_INFO)["spaceUsed"]
    not_trashed = api.post(DELETE, {"fileIDs": [alone]})
    assert not_trashed["code"] == 1 and "回收站" in not_trashed["message"]
    api.ok("POST", TRASH, {"fileIDs": [folder, alone]})
    root = {e["filename"]: e for e in listing(api)}
    # The v2 listing shows trashed entries with their flag, as the real service does.
    assert root["bin-test"]["trashed"] == 1 and root["alone.txt"]["trashed"] == 1
    assert "bin-test" not in names(api)
    assert api.ok("GET", DETAIL, {"fileID": alone})["trashed"] == 1
    assert api.get("/api/v1/file/download_info", {"fileId": inside})["code"] == 5066
    assert api.ok("GET", USER_INFO)["spaceUsed"] == used  # the trash still holds the bytes
    # A new entry may take a trashed one's name; recovering then keeps both.
    replacement = mkdir(api, "bin-test")
    abnormal = api.ok("POST", RECOVER, {"fileIDs": [folder, alone]})
    assert abnormal == {"abnormalFileIDs": []}
    live = names(api)
    assert live["bin-test"]["fileId"] == replacement and live["bin-test(1)"]["fileId"] == folder
    assert len(download(api, inside)) == 40
    # A file whose directory is in the trash cannot go back there: it is reported.
    api.ok("POST", TRASH, {"fileIDs": [inside]})
    api.ok("POST", TRASH, {"fileIDs": [folder]})
    assert api.ok("POST", RECOVER, {"fileIDs": [inside]}) == {"abnormalFileIDs": [inside]}
    target = mkdir(api, "restored")
    api.ok("POST", RECOVER_BY_PATH, {"fileIDs": [inside], "parentFileID": target})
    assert names(api, target)["inside.txt"]["fileId"] == inside
    # Delete for good: only from the trash (a file inside a trashed directory is in it too);
    # a trashed directory takes its contents along.
    api.ok("POST", RECOVER, {"fileIDs": [folder]})
    kept = upload_v1(api, blob(10), "kept.txt", folder)
    doomed = upload_v1(api, blob(20), "doomed.txt", folder)
    api.ok("POST", TRASH, {"fileIDs": [folder]})
    api.ok("POST", DELETE, {"fileIDs": [doomed]})
    assert api.get(DETAIL, {"fileID": doomed})["code"] == 5066
    api.ok("POST", DELETE, {"fileIDs": [folder]})
    assert api.get(DETAIL, {"fileID": folder})["code"] == 5066
    assert api.get(DETAIL, {"fileID": kept})["code"] == 5066
    assert api.ok("GET", USER_INFO)["spaceUsed"] == used


def test_upload_into_a_trashed_directory_is_refused(api: Api) -> None:
    folder = mkdir(api, "gone")
    api.ok("POST", TRASH, {"fileIDs": [folder]})
    answer = api.post(
        "/upload/v1/file/create",
        {"parentFileID": folder, "filename": "x.txt", "etag": "0" * 32, "size": 1},
    )
    assert answer["code"] == 5066 and answer["message"].startswith("parentFileID")
    assert api.post(MKDIR, {"name": "child", "parentID": folder})["code"] == 5066


def test_user_info(server: Server) -> None:
    creds = server.add_user(vip=False)
    client = server.client(creds)
    try:
        info = client.ok("GET", USER_INFO)
        assert isinstance(info["uid"], int) and info["nickname"] == creds["name"]
        assert info["vip"] is False and info["vipInfo"] is None
        assert info["spaceUsed"] == 0 and info["spacePermanent"] == 2 * 1024**4
        assert info["directTraffic"] == 1024**3 and info["downloadTrafficUsed"] == 0
        for key in ("headImage", "passport", "mail", "isHideUID", "httpsCount", "developerInfo"):
            assert key in info
        upload_v1(client, blob(1234), "x.bin")
        assert client.ok("GET", USER_INFO)["spaceUsed"] == 1234
    finally:
        client.close()
    vip = server.client(server.add_user(vip=True))
    try:
        info = vip.ok("GET", USER_INFO)
        assert info["vip"] is True and info["vipInfo"][0]["vipLabel"] == "VIP"
        assert info["downloadTrafficLimit"] == -1
    finally:
        vip.close()


def test_old_listing_is_rate_limited_like_the_real_service(fresh_server: Server) -> None:
    fresh_server.env["OPENPAN_RATE_LIMIT"] = "true"
    fresh_server.start()
    client = fresh_server.client(fresh_server.add_user())
    try:
        first = client.get(LIST_V1, {"parentFileId": 0, "page": 1, "limit": 10})
        assert first["code"] == 0
        second = client.get(LIST_V1, {"parentFileId": 0, "page": 1, "limit": 10})
        assert second["code"] == 429 and second["data"] is None
        assert "/api/v1/file/list" in second["message"]
        # Another endpoint has its own, larger allowance.
        assert client.get(LIST_V2, {"parentFileId": 0, "limit": 10})["code"] == 0
    finally:
        client.close()
