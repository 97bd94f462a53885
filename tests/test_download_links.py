"""Download links of cloud-disk files: what download_info hands out, what the link serves and
refuses, expiry, and the daily self-use traffic quota across a day boundary (moved clock)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pgdb
import pytest
from conftest import Api, MiB, Server
from diskkit import (
    DELETE,
    DOWNLOAD_INFO,
    RECOVER,
    TRASH,
    USER_INFO,
    blob,
    md5,
    mkdir,
    upload_v1,
)


def link(api: Api, file_id: int) -> str:
    url: str = api.ok("GET", DOWNLOAD_INFO, {"fileId": file_id})["downloadUrl"]
    return url


def test_link_serves_the_file_with_ranges_and_head(api: Api) -> None:
    data = blob(300_000)
    file_id = upload_v1(api, data, "报告 final.pdf")
    url = link(api, file_id)
    assert url.startswith(api.server.url + "/")
    full = httpx.get(url)
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-type"] == "application/pdf"
    assert "attachment" in full.headers["content-disposition"]
    assert quote("报告 final.pdf") in full.headers["content-disposition"]
    assert full.headers["etag"] == f'"{md5(data)}"'
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(data)
    # The same fileId in another call gives a working link too (fileID in any case).
    again = api.ok("GET", DOWNLOAD_INFO, {"fileID": str(file_id)})["downloadUrl"]
    assert httpx.get(again).content == data


def test_link_opens_only_its_own_file(api: Api) -> None:
    mine = upload_v1(api, blob(1000), "a.bin")
    other = upload_v1(api, blob(1000), "b.bin")
    url = link(api, mine)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    swapped = url.replace(f"/download/{mine}/", f"/download/{other}/")
    assert httpx.get(swapped).status_code == 403
    forged = url.replace(query["signature"][0], "0" * 64)
    assert httpx.get(forged).status_code == 403
    later = url.replace(f"expires={query['expires'][0]}", f"expires={int(query['expires'][0]) + 1}")
    assert httpx.get(later).status_code == 403
    unsigned = f"{parts.scheme}://{parts.netloc}{parts.path}"
    assert httpx.get(unsigned).status_code == 403
    nowhere = url.replace(f"/download/{mine}/", "/download/999999999/")
    assert httpx.get(nowhere).status_code == 404
    # The name in the path is cosmetic: the signature covers the file, not the name.
    renamed = url.replace("/a.bin?", "/whatever.bin?")
    assert httpx.get(renamed).status_code == 200


def test_download_info_refuses_what_is_not_a_live_file_of_yours(api: Api, other_api: Api) -> None:
    folder = mkdir(api, "dl-dir")
    file_id = upload_v1(api, blob(500), "x.bin", folder)
    url = link(api, file_id)
    missing = api.get(DOWNLOAD_INFO, {"fileId": 987654321})
    assert missing["code"] == 5066 and missing["data"] is None
    assert missing["message"].startswith("fileId") and "文件不存在" in missing["message"]
    theirs = other_api.get(DOWNLOAD_INFO, {"fileId": file_id})
    assert theirs["code"] == 5066
    assert theirs["message"] == missing["message"].replace("987654321", str(file_id))
    assert api.get(DOWNLOAD_INFO, {"fileId": folder})["code"] == 5066
    api.ok("POST", TRASH, {"fileIDs": [folder]})
    assert api.get(DOWNLOAD_INFO, {"fileId": file_id})["code"] == 5066
    assert httpx.get(url).status_code == 404  # a link handed out before stops with the trash
    api.ok("POST", RECOVER, {"fileIDs": [folder]})
    assert httpx.get(url).status_code == 200
    api.ok("POST", TRASH, {"fileIDs": [file_id]})
    api.ok("POST", DELETE, {"fileIDs": [file_id]})
    assert httpx.get(url).status_code == 404
    assert api.get(DOWNLOAD_INFO, {"fileId": file_id})["code"] == 5066


def _offset_to(local_moment: datetime) -> str:
    """OPENPAN_CLOCK_OFFSET that puts the server's clock at ``local_moment`` (Beijing time)."""
    target_utc = local_moment - timedelta(hours=8)
    now = datetime.now(UTC).replace(tzinfo=None)
    return str(int((target_utc - now).total_seconds()))


def _wait_used(api: Api, expected: int) -> None:
    deadline = time.monotonic() + 10
    used = -1
    while time.monotonic() < deadline:
        used = api.ok("GET", USER_INFO)["downloadTrafficUsed"]
        if used == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"traffic used is {used}, expected {expected}")


def test_daily_traffic_runs_out_mid_day_and_resets_the_next(fresh_server: Server) -> None:
    day = datetime(2031, 5, 20, 10, 0, 0)  # a Tuesday morning in Beijing
    fresh_server.env["OPENPAN_DOWNLOAD_TRAFFIC_DAILY"] = str(3 * MiB)
    fresh_server.env["OPENPAN_DOWNLOAD_LINK_TTL"] = "60"
    offset = _offset_to(day)
    fresh_server.env["OPENPAN_CLOCK_OFFSET"] = offset
    fresh_server.start()
    user = fresh_server.add_user()
    api = fresh_server.client(user)
    vip = fresh_server.client(fresh_server.add_user(vip=True))
    try:
        data = blob(MiB)
        file_id = upload_v1(api, data, "one-mib.bin")
        url = link(api, file_id)
        expires = int(parse_qs(urlsplit(url).query)["expires"][0])
        assert expires == pytest.approx(time.time() + int(offset) + 60, abs=15)
        for _ in range(2):
            assert httpx.get(url).content == data
        partial = httpx.get(url, headers={"Range": "bytes=0-524287"})
        assert partial.status_code == 206 and len(partial.content) == 512 * 1024
        httpx.head(url)  # a HEAD sends no body: free
        _wait_used(api, 2 * MiB + 512 * 1024)
        info = api.ok("GET", USER_INFO)
        assert info["directTraffic"] == 512 * 1024
        still = link(api, file_id)  # not spent yet: a link is handed out
        assert httpx.get(still).content == data  # crosses the allowance; sent in full
        _wait_used(api, 3 * MiB + 512 * 1024)
        spent = api.get(DOWNLOAD_INFO, {"fileId": file_id})
        assert spent["code"] == 5113 and spent["data"] is None
        assert "您今日自用下载流量已超出3MB上限" in spent["message"]
        assert httpx.get(url).status_code == 403  # links handed out earlier stop too
        assert api.ok("GET", USER_INFO)["directTraffic"] == 0
        # VIP users have no allowance to spend.
        vip_id = upload_v1(vip, data, "vip.bin")
        vip_url = link(vip, vip_id)
        for _ in range(4):
            assert httpx.get(vip_url).content == data
        assert vip.ok("GET", DOWNLOAD_INFO, {"fileId": vip_id})["downloadUrl"]
    finally:
        api.close()
        vip.close()
    fresh_server.stop()
    # What was counted was written down by the time the server stopped.
    with pgdb.connect(fresh_server.env, fresh_server.data_dir) as db:
        rows = db.execute("SELECT day, bytes FROM download_traffic ORDER BY day").fetchall()
    assert ("2031-05-20", 3 * MiB + 512 * 1024) in rows
    # Just after midnight, Beijing time: a new day's allowance; yesterday's link has expired.
    fresh_server.env["OPENPAN_CLOCK_OFFSET"] = _offset_to(day + timedelta(hours=14, minutes=5))
    fresh_server.start()
    api = fresh_server.client(user)
    try:
        assert api.ok("GET", USER_INFO)["downloadTrafficUsed"] == 0
        assert httpx.get(still).status_code == 403
        assert httpx.get(link(api, file_id)).content == data
        _wait_used(api, MiB)
    finally:
        api.close()
