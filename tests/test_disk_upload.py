"""Uploads into the cloud disk: V1 (presigned PUTs), V2 (form slices, 20103), one-step, instant
uploads shared with the image bed, duplicate modes, containDir, and the storage quota."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import httpx
from conftest import Api, MiB, Server, jpeg_bytes
from diskkit import (
    COMPLETE_V2,
    CREATE_V1,
    CREATE_V2,
    DOMAIN,
    PARTS,
    UPLOAD_URL,
    USER_INFO,
    blob,
    complete_v1,
    complete_v2,
    create_v1,
    download,
    md5,
    mkdir,
    names,
    post_slice,
    put_slices_v1,
    single,
    upload_v1,
    upload_v2,
)


def test_v1_multislice_parallel_out_of_order_and_resent(api: Api) -> None:
    data = blob(3 * MiB + 12345)  # 4 slices, above the sync-complete size: async completion
    created = create_v1(api, data, "video.mp4")
    body = created["data"]
    assert created["code"] == 0 and body["reuse"] is False and body["fileID"] == 0
    assert body["sliceSize"] == MiB and body["preuploadID"]
    pre = body["preuploadID"]
    put_slices_v1(api, pre, data, MiB, parallel=4)
    put_slices_v1(api, pre, data, MiB, parallel=2)  # every slice sent twice
    parts = api.ok("POST", PARTS, {"preuploadID": pre})["parts"]
    assert [p["partNumber"] for p in parts] == ["1", "2", "3", "4"]
    assert parts[0]["etag"] == md5(data[:MiB]) and parts[3]["size"] == 12345
    file_id = complete_v1(api, pre)
    assert download(api, file_id) == data
    listed = names(api)["video.mp4"]
    assert listed["fileId"] == file_id and listed["size"] == len(data) and listed["category"] == 2
    # Completing again answers the same file.
    again = api.ok("POST", COMPLETE_V1_PATH, {"preuploadID": pre})
    assert again["completed"] is True and again["fileID"] == file_id


COMPLETE_V1_PATH = "/upload/v1/file/upload_complete"


def test_v1_small_file_completes_synchronously_and_any_type(api: Api) -> None:
    data = b"#!/bin/sh\necho hello\n"
    file_id = upload_v1(api, data, "run.sh")
    assert download(api, file_id) == data
    empty = upload_v1(api, b"", "empty.bin")
    assert download(api, empty) == b""


def test_instant_upload_shared_with_the_image_bed(api: Api, other_api: Api) -> None:
    image = jpeg_bytes(300_000)
    api.oss_upload(image, "shared.jpg")
    created = create_v1(other_api, image, "from-disk.jpg")
    assert created["code"] == 0 and created["data"]["reuse"] is True
    assert isinstance(created["data"]["fileID"], int) and created["data"]["fileID"] > 0
    assert download(other_api, created["data"]["fileID"]) == image
    # And the other way: bytes first in the cloud disk make an image-bed upload instant.
    image2 = jpeg_bytes(1_200_000)  # two slices, sent in parallel through V2
    assert download(api, upload_v2(api, image2, "first.jpg", parallel=2)) == image2
    again = other_api.ok(
        "POST",
        "/upload/v1/oss/file/create",
        {"filename": "second.jpg", "etag": md5(image2), "size": len(image2), "type": 1},
    )
    assert again["reuse"] is True


def test_duplicate_modes(api: Api) -> None:
    folder = mkdir(api, "dups")
    first = upload_v1(api, b"one", "a.txt", folder)
    clash = create_v1(api, b"two", "a.txt", folder)
    assert clash["code"] == 1 and "filename" in clash["message"] and clash["data"] is None
    kept = upload_v1(api, b"two", "a.txt", folder, duplicate=1)
    assert kept != first
    entries = names(api, folder)
    assert set(entries) == {"a.txt", "a(1).txt"} and entries["a(1).txt"]["fileId"] == kept
    replaced = upload_v1(api, b"three", "a.txt", folder, duplicate=2)
    entries = names(api, folder)
    assert entries["a.txt"]["fileId"] == replaced and download(api, replaced) == b"three"
    assert set(entries) == {"a.txt", "a(1).txt"}
    # Instant uploads follow the same rules.
    instant = create_v1(api, b"two", "a(1).txt", folder, duplicate=1)
    assert instant["data"]["reuse"] is True
    assert set(names(api, folder)) == {"a.txt", "a(1).txt", "a(1)(1).txt"}


def test_contain_dir_makes_the_path(api: Api) -> None:
    root = mkdir(api, "base")
    file_id = upload_v1(api, b"deep", "/你好/123/测试文件.mp4", root, containDir=True)
    hello = names(api, root)["你好"]
    assert hello["type"] == 1
    inner = names(api, hello["fileId"])["123"]
    assert names(api, inner["fileId"])["测试文件.mp4"]["fileId"] == file_id
    # The same path again reuses the directories.
    upload_v1(api, b"deeper", "你好/123/second.txt", root, containDir=True)
    assert set(names(api, inner["fileId"])) == {"测试文件.mp4", "second.txt"}
    # Without containDir, a slash is a forbidden character.
    refused = create_v1(api, b"x", "a/b.txt", root)
    assert refused["code"] == 1 and "filename" in refused["message"]
    bad = create_v1(api, b"x", "/ok/../b.txt", root, containDir=True)
    assert bad["code"] == 1 and "filename" in bad["message"]


def test_v2_flow_parallel_repeated_and_async(api: Api) -> None:
    domains = api.get(DOMAIN)
    assert domains["code"] == 0 and domains["data"] == [api.server.url]
    data = blob(3 * MiB + 5)  # async: upload_complete answers 20103 first
    created = api.ok(
        "POST",
        CREATE_V2,
        {"parentFileID": 0, "filename": "big.iso", "etag": md5(data), "size": len(data)},
    )
    assert created["servers"] == [api.server.url] and created["reuse"] is False
    assert created["fileID"] == 0
    server, pre = created["servers"][0], created["preuploadID"]
    chunks = [data[i * MiB : (i + 1) * MiB] for i in range(4)]

    def send(number: int) -> None:
        answer = post_slice(api, server, pre, number, chunks[number - 1])
        assert answer["code"] == 0 and answer["data"] is None, answer

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, [4, 3, 2, 1, 2, 4]))  # parallel, out of order, some twice
    file_id = complete_v2(api, pre)
    assert download(api, file_id) == data
    again = api.ok("POST", COMPLETE_V2, {"preuploadID": pre})
    assert again == {"completed": True, "fileID": file_id}
    # Instant on V2 as well.
    instant = api.ok(
        "POST",
        CREATE_V2,
        {"parentFileID": 0, "filename": "copy.iso", "etag": md5(data), "size": len(data)},
    )
    assert instant["reuse"] is True and instant["fileID"] > 0


def test_v2_slice_with_wrong_md5_is_refused_and_leaves_the_good_copy(api: Api) -> None:
    data = blob(MiB + 100)
    created = api.ok(
        "POST",
        CREATE_V2,
        {"parentFileID": 0, "filename": "m.bin", "etag": md5(data), "size": len(data)},
    )
    server, pre = created["servers"][0], created["preuploadID"]
    first, second = data[:MiB], data[MiB:]
    assert post_slice(api, server, pre, 1, first)["code"] == 0
    wrong = post_slice(api, server, pre, 1, b"\0" * MiB, slice_md5=md5(first))
    assert wrong["code"] == 1 and "sliceMD5" in wrong["message"] and wrong["data"] is None
    lie = post_slice(api, server, pre, 2, second, slice_md5="0" * 32)
    assert lie["code"] == 1 and "sliceMD5" in lie["message"]
    short = post_slice(api, server, pre, 1, first[:-1])
    assert short["code"] == 1 and "slice" in short["message"]
    beyond = post_slice(api, server, pre, 3, second)
    assert beyond["code"] == 1 and "sliceNo" in beyond["message"]
    # Nothing complete yet: slice 2 never arrived.
    missing = api.post(COMPLETE_V2, {"preuploadID": pre})
    assert missing["code"] == 1 and "preuploadID" in missing["message"]
    assert post_slice(api, server, pre, 2, second)["code"] == 0
    assert download(api, complete_v2(api, pre)) == data


def test_v2_slice_needs_the_token_and_the_form(api: Api, other_api: Api) -> None:
    data = blob(1000)
    created = api.ok(
        "POST",
        CREATE_V2,
        {"parentFileID": 0, "filename": "t.bin", "etag": md5(data), "size": len(data)},
    )
    server, pre = created["servers"][0], created["preuploadID"]
    anonymous = httpx.post(
        server + "/upload/v2/file/slice",
        data={"preuploadID": pre, "sliceNo": "1", "sliceMD5": md5(data)},
        files={"slice": ("p", data)},
    )
    assert anonymous.status_code == 200 and anonymous.json()["code"] == 401
    stranger = post_slice(other_api, server, pre, 1, data)
    assert stranger["code"] == 5066 and stranger["data"] is None
    as_json = api.post("/upload/v2/file/slice", {"preuploadID": pre, "sliceNo": 1})
    assert as_json["code"] == 1 and "multipart" in as_json["message"]
    no_file = httpx.post(
        server + "/upload/v2/file/slice",
        headers=api.headers,
        files={"preuploadID": (None, pre), "sliceNo": (None, "1"), "sliceMD5": (None, md5(data))},
    ).json()
    assert no_file["code"] == 1 and no_file["message"].startswith("slice ")
    too_big = httpx.post(
        server + "/upload/v2/file/slice",
        headers=api.headers,
        data={"preuploadID": pre, "sliceNo": "1", "sliceMD5": md5(data)},
        files={"slice": ("p", b"x" * (MiB + 1))},
    ).json()
    assert too_big["code"] == 1 and "slice" in too_big["message"]
    assert post_slice(api, server, pre, 1, data)["code"] == 0
    assert download(api, complete_v2(api, pre)) == data


def test_single_step_upload(api: Api) -> None:
    data = blob(2 * MiB + 7)
    answer = single(api, data, "one-step.bin")
    assert answer["code"] == 0 and answer["data"]["completed"] is True
    file_id = answer["data"]["fileID"]
    assert isinstance(file_id, int) and download(api, file_id) == data
    clash = single(api, data, "one-step.bin")
    assert clash["code"] == 1 and "filename" in clash["message"]
    kept = single(api, data, "one-step.bin", duplicate=1)
    assert kept["code"] == 0 and kept["data"]["fileID"] != file_id
    assert "one-step(1).bin" in names(api)
    wrong_md5 = single(api, data, "x.bin", etag="0" * 32)
    assert wrong_md5["code"] == 1 and wrong_md5["message"].startswith("etag")
    wrong_size = single(api, data, "y.bin", size=len(data) + 1)
    assert wrong_size["code"] == 1 and wrong_size["message"].startswith("size")
    nested = single(api, b"in a dir", "/one/two/z.txt", containDir="true")
    assert nested["code"] == 0
    assert "z.txt" in names(api, names(api, names(api)["one"]["fileId"])["two"]["fileId"])
    missing = httpx.post(
        api.server.url + "/upload/v2/file/single/create",
        headers=api.headers,
        data={"parentFileID": "0", "filename": "n.txt", "etag": md5(b"n"), "size": "1"},
        files={"other": ("n.txt", b"n")},
    ).json()
    assert missing["code"] == 1 and "other" in missing["message"]


def test_storage_quota(server: Server) -> None:
    creds = server.add_user()
    client = server.client(creds)
    try:
        done = server.cli("user", "set", creds["name"], "--quota", str(3 * MiB))
        assert done.returncode == 0, done.stderr
        info = client.ok("GET", USER_INFO)
        assert info["spacePermanent"] == 3 * MiB and info["spaceUsed"] == 0
        first = blob(2 * MiB)
        upload_v1(client, first, "a.bin")
        assert client.ok("GET", USER_INFO)["spaceUsed"] == 2 * MiB
        over = create_v1(client, blob(MiB + 1), "b.bin")
        assert over["code"] == 1 and "size" in over["message"] and "空间" in over["message"]
        over_v2 = client.post(
            CREATE_V2,
            {"parentFileID": 0, "filename": "c.bin", "etag": "a" * 32, "size": MiB + 1},
        )
        assert over_v2["code"] == 1 and "空间" in over_v2["message"]
        over_single = single(client, blob(MiB + 1), "d.bin")
        assert over_single["code"] == 1 and "空间" in over_single["message"]
        # Instant uploads take space too (each user pays for their own files).
        instant = create_v1(client, first, "again.bin")
        assert instant["code"] == 1 and "空间" in instant["message"]
        upload_v1(client, blob(MiB), "fits.bin")  # exactly at the quota
        assert client.ok("GET", USER_INFO)["spaceUsed"] == 3 * MiB
    finally:
        client.close()


def test_get_upload_url_and_parts_are_per_space_and_user(api: Api, other_api: Api) -> None:
    data = blob(10)
    pre = create_v1(api, data, "mine.txt")["data"]["preuploadID"]
    for path in (UPLOAD_URL, PARTS, COMPLETE_V1_PATH, "/upload/v1/file/upload_async_result"):
        stranger = other_api.post(path, {"preuploadID": pre, "sliceNo": 1})
        assert stranger["code"] == 5066, (path, stranger)
        # An image-bed endpoint does not know a cloud-disk upload either.
        oss = api.post(path.replace("/file/", "/oss/file/"), {"preuploadID": pre, "sliceNo": 1})
        assert oss["code"] == 5066, (path, oss)
    put_slices_v1(api, pre, data, MiB)
    assert download(api, complete_v1(api, pre)) == data
    assert hashlib.md5(download(api, complete_v1(api, pre))).hexdigest() == md5(data)
    assert api.ok(
        "POST", CREATE_V1, {"parentFileID": 0, "filename": "z", "etag": md5(b""), "size": 0}
    )
