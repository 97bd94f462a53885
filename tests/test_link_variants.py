"""Image variants on public links, through real HTTP: made once, stored, served like a file
(validators, ranges, HEAD, traffic, access rules), refused where they make no sense, removed
with their image; and an image's size read once when its upload completes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import pyvips
import sdkkit
from conftest import Api, Server, jpeg_bytes
from imagebed import DELETE, DETAIL, query

OSS_DELETE = DELETE
IMAGE = "/openpan/v1/oss/file/image"


def photo(width: int, height: int, orientation: int = 1, *, format: str = ".jpg") -> bytes:
    """A fresh image unlike any other call's (noise), with an orientation and EXIF text."""
    noise = pyvips.Image.gaussnoise(width, height, sigma=60).cast("uchar")
    image = noise.bandjoin([noise, noise.invert()]).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "someone (someone, ASCII, 8)")
    return bytes(image.write_to_buffer(format))


def link_of(api: Api, file_id: str) -> str:
    url: str = api.ok("GET", DETAIL, {"fileID": file_id})["downloadURL"]
    return url


def get(url: str, method: str = "GET", **headers: str) -> httpx.Response:
    return httpx.request(method, url, headers=headers, timeout=60)


def decoded(body: bytes) -> pyvips.Image:
    """The image in ``body``; an animation with every frame (``n-pages`` says how many)."""
    image = pyvips.Image.new_from_buffer(body, "")
    if image.get("vips-loader") in ("gifload_buffer", "webpload_buffer"):
        return pyvips.Image.new_from_buffer(body, "", n=-1)
    return image


def variant_rows(server: Server, file_id: str) -> list[tuple[Any, ...]]:
    """(name, key, size, refused) of every variant of the file's blob."""
    return query(
        server,
        "SELECT v.name, v.key, v.size, v.refused FROM blob_variants v "
        "JOIN files f ON f.blob_id = v.blob_id WHERE f.oss_id = ? ORDER BY v.name",
        file_id,
    )


def variant_files(server: Server) -> set[str]:
    root = server.data_dir / "blobs" / "blobs" / "v"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_a_thumbnail_is_upright_small_without_metadata_and_served_like_a_file(
    server: Server, api: Api
) -> None:
    data = photo(1200, 800, orientation=6)  # shown turned: 800 wide, 1200 high
    url = link_of(api, api.oss_upload(data, "turned.jpg"))
    response = get(url + "?w=256&format=webp")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/webp"
    image = decoded(response.content)
    assert (image.width, image.height) == (256, 384)  # upright: taller than wide
    for field in ("exif-data", "xmp-data", "orientation", "icc-profile-data"):
        assert not image.get_typeof(field), field
    etag = response.headers["etag"]
    assert etag == f'"{hashlib.md5(response.content).hexdigest()}"'
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "vary" not in response.headers
    # Then served exactly like a stored file: 304, ranges, HEAD.
    assert get(url + "?w=256&format=webp", **{"If-None-Match": etag}).status_code == 304
    ranged = get(url + "?w=256&format=webp", Range="bytes=0-9")
    assert ranged.status_code == 206 and ranged.content == response.content[:10]
    assert ranged.headers["content-range"] == f"bytes 0-9/{len(response.content)}"
    head = get(url + "?w=256&format=webp", "HEAD")
    assert head.content == b"" and head.headers["content-length"] == str(len(response.content))
    # The original is untouched, byte for byte, and answers as before.
    original = get(url)
    assert original.content == data and original.headers["content-type"] == "image/jpeg"
    assert get(url + "?v=2").content == data  # other parameters are none of the variants'


def test_sizes_go_up_the_ladder_never_beyond_the_original(server: Server, api: Api) -> None:
    file_id = api.oss_upload(photo(700, 350), "wide.jpg")
    url = link_of(api, file_id)
    first = get(url + "?w=100")
    assert first.headers["content-type"] == "image/jpeg"  # the original's format
    assert decoded(first.content).width == 128
    assert get(url + "?w=128").headers["etag"] == first.headers["etag"]  # the same variant
    whole = decoded(get(url + "?w=4000").content)
    assert (whole.width, whole.height) == (700, 350)  # never enlarged
    assert decoded(get(url + "?h=64").content).height == 64
    names = [row[0] for row in variant_rows(server, file_id)]
    assert len(names) == 3, names  # 128 wide, 700 (the original's width), 64 high
    covered = decoded(get(url + "?w=100&h=100&fit=cover&format=png").content)
    assert (covered.width, covered.height) == (128, 128)


@pytest.mark.parametrize(
    ("query_string", "named"),
    [
        ("w=abc", "w"),
        ("w=0", "w"),
        ("w=-5", "w"),
        ("h=1e3", "h"),
        ("w=99999999999", "w"),
        ("fit=zoom", "fit"),
        ("format=exe", "format"),
        ("format=", "format"),
        ("q=101", "q"),
        ("w=64&w=128", "w"),
        ("w=%EF%BC%91", "w"),  # a full-width digit
    ],
)
def test_a_query_that_makes_no_sense_gets_a_plain_400_naming_it(
    server: Server, api: Api, query_string: str, named: str
) -> None:
    url = link_of(api, api.oss_upload(photo(64, 64), "small.png"))
    response = get(f"{url}?{query_string}")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(f"400 Bad Request: {named} ")
    assert len(response.text.splitlines()) == 1


def test_format_auto_follows_accept_and_says_it_varies(server: Server, api: Api) -> None:
    url = link_of(api, api.oss_upload(photo(300, 200), "auto.jpg"))
    avif = get(url + "?w=64&format=auto", Accept="image/avif,image/webp,*/*")
    assert avif.headers["content-type"] == "image/avif" and avif.headers["vary"] == "Accept"
    assert decoded(avif.content).width == 64
    webp = get(url + "?w=64&format=auto", Accept="image/webp,*/*")
    assert webp.headers["content-type"] == "image/webp"
    plain = get(url + "?w=64&format=auto", Accept="*/*")
    assert plain.headers["content-type"] == "image/jpeg" and plain.headers["vary"] == "Accept"
    again = get(url + "?w=64&format=auto", Accept="image/avif,*/*")
    assert again.content == avif.content
    assert get(url + "?w=64&format=auto", **{"If-None-Match": again.headers["etag"]}).headers[
        "vary"
    ] == ("Accept")


def test_animations_stay_animated_and_tiff_becomes_webp(server: Server, api: Api) -> None:
    frames = [pyvips.Image.gaussnoise(120, 80).cast("uchar") for _ in range(3)]
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 80)
    url = link_of(api, api.oss_upload(bytes(strip.gifsave_buffer()), "moving.gif"))
    moving = get(url + "?w=64")
    assert moving.headers["content-type"] == "image/gif"
    assert decoded(moving.content).get("n-pages") == 3
    as_webp = decoded(get(url + "?w=64&format=webp").content)
    assert as_webp.get("n-pages") == 3 and as_webp.width == 64
    tiff = link_of(api, api.oss_upload(photo(200, 100, format=".tif"), "scan.tif"))
    shown = get(tiff + "?w=64")
    assert shown.headers["content-type"] == "image/webp"


def test_images_without_variants_are_served_as_the_original(server: Server, api: Api) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'
    svg_url = link_of(api, api.oss_upload(svg, "vector.svg"))
    answered = get(svg_url + "?w=64&format=png")
    assert answered.content == svg and answered.headers["content-type"] == "image/svg+xml"
    assert "sandbox" in answered.headers["content-security-policy"]
    # Bytes that start like a JPEG but are none: no variant, the original, every time.
    fake = jpeg_bytes(5000)
    fake_id = api.oss_upload(fake, "fake.jpg")
    fake_url = link_of(api, fake_id)
    for _ in range(2):
        assert get(fake_url + "?w=64").content == fake
    # A JPEG cut off halfway decodes as far as it goes: refused (recorded), never a grey half.
    whole = photo(400, 300)
    cut_id = api.oss_upload(whole[: len(whole) // 2], "cut.jpg")
    cut_url = link_of(api, cut_id)
    assert get(cut_url + "?w=64").content == whole[: len(whole) // 2]
    rows = variant_rows(server, cut_id)
    assert len(rows) == 1 and rows[0][1] is None and rows[0][3]


def test_concurrent_first_requests_make_the_variant_once(server: Server, api: Api) -> None:
    file_id = api.oss_upload(photo(1600, 1200), "popular.jpg")
    url = link_of(api, file_id) + "?w=512&format=webp"
    before = variant_files(server)
    with ThreadPoolExecutor(12) as pool:
        bodies = list(pool.map(lambda _: get(url).content, range(12)))
    assert len(set(bodies)) == 1 and decoded(bodies[0]).width == 512
    rows = variant_rows(server, file_id)
    assert len(rows) == 1 and rows[0][2] == len(bodies[0])
    assert len(variant_files(server) - before) == 1


def test_deleting_the_image_removes_its_variants(server: Server, api: Api) -> None:
    file_id = api.oss_upload(photo(500, 500), "doomed.jpg")
    url = link_of(api, file_id)
    before = variant_files(server)
    for width in (64, 128, 256):
        assert get(f"{url}?w={width}&format=webp").status_code == 200
    made = variant_files(server) - before
    assert len(made) == 3
    keys = {row[1] for row in variant_rows(server, file_id)}
    api.ok("POST", OSS_DELETE, {"fileIDs": [file_id]})
    assert not made & variant_files(server)
    assert not query(server, "SELECT 1 FROM blob_variants WHERE key IN (?, ?, ?)", *keys)
    assert get(url + "?w=64&format=webp").status_code == 404


def test_an_image_size_is_read_once_when_its_upload_completes(server: Server, api: Api) -> None:
    file_id = api.oss_upload(photo(640, 480, orientation=8), "kept.jpg")
    rows = query(
        server,
        "SELECT b.image_format, b.image_width, b.image_height, b.image_frames FROM blobs b "
        "JOIN files f ON f.blob_id = b.id WHERE f.oss_id = ?",
        file_id,
    )
    assert rows == [("jpeg", 480, 640, 1)]  # as shown: turned by 90 degrees
    # The 123pan answers stay as documented: nothing added to the file's detail.
    detail = api.ok("GET", DETAIL, {"fileID": file_id})
    assert not {"width", "height", "imageWidth"} & set(detail)


def test_variant_bytes_count_as_the_file_s_traffic(server: Server, api: Api) -> None:
    file_id = api.oss_upload(photo(300, 300), "counted.jpg")
    body = get(link_of(api, file_id) + "?w=64&format=png").content
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if api.ok("GET", DETAIL, {"fileID": file_id})["totalTraffic"] >= len(body):
            break
        time.sleep(0.2)
    assert api.ok("GET", DETAIL, {"fileID": file_id})["totalTraffic"] == len(body)


def _set_referers(server: Server, name: str, allowed: str) -> None:
    script = """
import asyncio, sys
from openpan.db.engine import Database
from openpan.services import users
from openpan.settings import load_settings

async def main() -> None:
    db = Database(load_settings(data_dir=sys.argv[1]).effective_database_url)
    try:
        await users.update_user(db, sys.argv[2], referer_allow=sys.argv[3],
                                referer_allow_empty=False)
    finally:
        await db.dispose()

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(server.data_dir), name, allowed],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_the_owner_s_access_rules_apply_to_variants(server: Server) -> None:
    creds = server.take_user()
    api = server.client(creds)
    try:
        url = link_of(api, api.oss_upload(photo(200, 200), "guarded.jpg"))
        _set_referers(server, creds["name"], "blog.example.com")
        time.sleep(2.5)  # the link cache's lifetime
        assert get(url + "?w=64").status_code == 403
        assert get(url + "?w=64", Referer="https://evil.example.net/").status_code == 403
        allowed = get(url + "?w=64", Referer="https://blog.example.com/post")
        assert allowed.status_code == 200 and decoded(allowed.content).width == 64
    finally:
        api.close()


def test_too_many_pixels_get_the_original_and_renders_are_bounded(
    fresh_server: Server, tmp_path: Path
) -> None:
    fresh_server.env.update(OPENPAN_VARIANT_MAX_PIXELS="100000", OPENPAN_VARIANT_RENDERS="1")
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())
    try:
        big = photo(400, 300)  # 120,000 pixels
        big_id = api.oss_upload(big, "big.jpg")
        assert get(link_of(api, big_id) + "?w=64").content == big
        (_, key, _, refused) = variant_rows(fresh_server, big_id)[0]
        assert key is None and "too many pixels" in refused
        # One render at a time, many asked at once: every request is answered.
        ids = [api.oss_upload(photo(300, 300), f"p{n}.jpg") for n in range(6)]
        urls = [link_of(api, file_id) + "?w=64&format=webp" for file_id in ids]
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(get, urls))
        assert {answer.status_code for answer in answers} == {200}
        assert "Traceback" not in fresh_server.log_tail()
    finally:
        api.close()


def test_settings_refuse_a_bad_ladder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "openpan", "serve", "--data-dir", str(tmp_path), "--port", "1"],
        env={**os.environ, "OPENPAN_VARIANT_SIZES": "64,abc"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "OPENPAN_VARIANT_SIZES" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_variants_survive_a_restart_without_being_made_again(fresh_server: Server) -> None:
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())
    try:
        file_id = api.oss_upload(photo(300, 300), "kept.jpg")
        url = link_of(api, file_id) + "?w=64"
        first = get(url)
        api.close()
        fresh_server.stop()
        fresh_server.start()
        api = fresh_server.client(api.creds)
        assert get(url).headers["etag"] == first.headers["etag"]
        assert len(variant_rows(fresh_server, file_id)) == 1
    finally:
        api.close()


def test_the_sdk_and_openpan_s_endpoint_show_an_image_s_size(
    server: Server, api: Api, other_api: Api, tmp_path: Path
) -> None:
    file_id = api.oss_upload(photo(320, 200, orientation=6), "shown.jpg")
    answer = api.ok("GET", IMAGE, {"fileID": file_id})
    assert answer == {"fileID": file_id, "format": "jpeg", "width": 200, "height": 320, "frames": 1}
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>'
    svg_id = api.oss_upload(svg, "drawn.svg")
    assert api.ok("GET", IMAGE, {"fileID": svg_id})["format"] == ""
    # Bad input gets the envelope naming the field; another user's file is not found.
    missing = api.get(IMAGE, {})
    assert missing["code"] != 0 and "fileID" in missing["message"]
    foreign = other_api.get(IMAGE, {"fileID": file_id})
    assert foreign["code"] != 0 and file_id in foreign["message"]
    assert httpx.get(server.url + IMAGE, params={"fileID": file_id}).json()["code"] != 0
    with sdkkit.client(server, tmp_path, api.creds) as pan:
        info = pan.oss_image_info(file_id)
        assert (info.width, info.height, info.frames, info.format) == (200, 320, 1, "jpeg")
