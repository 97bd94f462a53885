"""The web app in Debian's Chromium (Playwright), same machine, same run:

8. A gallery folder of 1,000 images: time from navigation to the first screen of thumbnails
   painted, and the image requests made before any scrolling (cold: the thumbnails are made
   on first request; warm: they are stored, the browser's cache is empty).
9. A 1 GiB file uploaded through the page (md5 in a worker, slices in parallel) against the
   SDK's ``Client.upload`` of the same file (md5 included in both); goal >= 0.7 x.
10. The weight of each page's first load, compressed, images aside; goal < 200 KB.

    python bench/web.py [--images 1000] [--size-mib 1024] [--rounds 2]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pyvips
from common import Openpan, alternate, machine, median, random_file, table, workdir
from playwright.sync_api import sync_playwright

from openpan.client import Client

PASSWORD = "bench password 1"
OPENPAN = [sys.executable, "-m", "openpan"]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every thumbnail of the viewport has painted (complete, decoded, not empty).
FIRST_SCREEN = """() => {
  const imgs = [...document.querySelectorAll('.grid img')];
  const visible = imgs.filter(i => { const r = i.getBoundingClientRect();
    return r.top < innerHeight && r.bottom > 0; });
  return visible.length > 0 && visible.every(i => i.complete && i.naturalWidth > 0);
}"""


def picture(seed: int) -> bytes:
    """A 1024x768 photo-like JPEG (about 150 KB), unlike the others."""
    smooth = pyvips.Image.perlin(1024, 768, cell_size=128, seed=seed) * 90 + 128
    bands = [smooth.cast("uchar"), (smooth * 0.7 + 40).cast("uchar"), (255 - smooth).cast("uchar")]
    image = bands[0].bandjoin(bands[1:]).copy(interpretation="srgb")
    data: bytes = image.jpegsave_buffer(Q=85)
    return data


def upload_small(server: Openpan, parent: str, name: str, data: bytes) -> str:
    etag = hashlib.md5(data).hexdigest()
    body = {"parentFileID": parent, "filename": name, "etag": etag, "size": len(data), "type": 1}
    created = server.call("/upload/v1/oss/file/create", body)
    if created["reuse"]:
        return str(created["fileID"])
    pre = created["preuploadID"]
    url = server.call("/upload/v1/oss/file/get_upload_url", {"preuploadID": pre, "sliceNo": 1})
    httpx.put(url["presignedURL"], content=data, timeout=60).raise_for_status()
    done = server.call("/upload/v1/oss/file/upload_complete", {"preuploadID": pre})
    while not done["completed"]:
        time.sleep(0.05)
        done = server.call("/upload/v1/oss/file/upload_async_result", {"preuploadID": pre})
    return str(done["fileID"])


class Browser:
    def __init__(self, playwright: Any, server: Openpan) -> None:
        self.server = server
        self.chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )

    def signed_in(self, **options: Any) -> Any:
        """A new context (empty cache), signed in as the bench user."""
        context = self.chromium.new_context(viewport={"width": 1280, "height": 860}, **options)
        answer = context.request.post(
            self.server.url + "/web/api/login", data={"name": "bench", "password": PASSWORD}
        ).json()
        assert answer["code"] == 0, answer
        return context

    def close(self) -> None:
        self.chromium.close()


def gallery_first_screen(browser: Browser, folder: str) -> tuple[float, int, int]:
    """Seconds to the first screen painted, image requests by then, thumbnails in the grid."""
    context = browser.signed_in()
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.resource_type == "image" else None)
    started = time.perf_counter()
    page.goto(f"{browser.server.url}/#/gallery/{folder}")
    page.wait_for_function(FIRST_SCREEN, timeout=120_000, polling=10)
    elapsed = time.perf_counter() - started
    shown = page.locator(".grid img").count()
    context.close()
    return elapsed, len(requests), shown


def page_weights(browser: Browser) -> list[tuple[str, int]]:
    """Bytes on the wire (compressed) of each page's first load, images aside."""
    weights = []
    for name, route, signed in (
        ("sign-in", "/", False),
        ("gallery", "/#/gallery", True),
        ("cloud disk", "/#/disk", True),
        ("offline", "/#/tasks", True),
        ("account", "/#/account", True),
    ):
        context = (
            browser.signed_in()
            if signed
            else browser.chromium.new_context(viewport={"width": 1280, "height": 860})
        )
        page = context.new_page()
        sizes: list[int] = []

        def count(response: Any, into: list[int] = sizes) -> None:
            if response.request.resource_type != "image":
                into.append(response.request.sizes()["responseBodySize"])

        page.on("response", count)
        page.goto(browser.server.url + route)
        page.wait_for_load_state("networkidle")
        weights.append((name, sum(sizes)))
        context.close()
    return weights


def browser_upload(browser: Browser, path: Path) -> float:
    """Seconds for the page to upload ``path`` into the cloud disk (md5 included)."""
    context = browser.signed_in()
    page = context.new_page()
    page.goto(browser.server.url + "/#/disk")
    page.wait_for_load_state("networkidle")
    started = time.perf_counter()
    page.get_by_test_id("disk-upload-input").set_input_files(str(path))
    page.locator(".uploads li[data-state=done]").wait_for(timeout=900_000)
    elapsed = time.perf_counter() - started
    context.close()
    return elapsed


def remove_disk_files(server: Openpan) -> None:
    listed = server.call_get("/api/v2/file/list", {"parentFileId": 0, "limit": 100})
    for entry in listed["fileList"]:
        if entry["type"] == 0:
            server.delete(str(entry["fileId"]), space="disk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(machine())
    with workdir() as root, sync_playwright() as playwright:
        server = Openpan(root / "openpan")
        server.start()
        data_dir = root / "openpan" / "data"
        subprocess.run(
            [*OPENPAN, "user", "password", "bench", "--data-dir", str(data_dir)],
            input=PASSWORD + "\n",
            text=True,
            check=True,
            capture_output=True,
        )
        browser = Browser(playwright, server)
        try:
            rows = []
            made = server.call(
                "/upload/v1/oss/file/mkdir", {"name": ["gallery"], "parentID": "", "type": 1}
            )
            folder = made["list"][0]["dirID"]
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda i: upload_small(server, folder, f"photo-{i:04}.jpg", picture(i)),
                        range(args.images),
                    )
                )
            print(f"uploaded {args.images} images in {time.perf_counter() - started:.1f} s")
            for label in ("cold", "warm"):
                seconds, requests, shown = gallery_first_screen(browser, folder)
                rows.append(
                    [
                        f"8. gallery of {args.images}: first screen ({label})",
                        f"{seconds * 1000:.0f} ms",
                        f"{requests} image requests, {shown} tiles loaded",
                    ]
                )
            for name, size in page_weights(browser):
                rows.append([f"10. first load of {name}, compressed", f"{size / 1024:.1f} KB", ""])

            source = random_file(root / "upload.bin", args.size_mib * 1024 * 1024)
            client = Client(
                base_url=server.url,
                access_token=server.token,
                timeout=600,
                upload_state_dir=root / "sdk-state",
            )

            def sdk() -> float:
                remove_disk_files(server)
                started = time.perf_counter()
                client.upload(str(source), "/", space="disk")
                return time.perf_counter() - started

            def page() -> float:
                remove_disk_files(server)
                return browser_upload(browser, source)

            times = alternate(args.rounds, {"sdk": sdk, "page": page})
            size = args.size_mib
            sdk_rate, page_rate = size / median(times["sdk"]), size / median(times["page"])
            rows.append(
                [
                    f"9. upload {size} MiB: page vs SDK (MiB/s, md5 included)",
                    f"{page_rate:.0f} vs {sdk_rate:.0f}",
                    f"{page_rate / sdk_rate:.2f} x (goal >= 0.7)",
                ]
            )
            client.close()
        finally:
            browser.close()
            server.stop()
        print(table(rows, ["measurement", "result", "note"]))


if __name__ == "__main__":
    main()
