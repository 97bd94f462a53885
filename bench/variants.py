"""Image variants on public links against libvips' own ``vipsthumbnail`` (Debian's
``libvips-tools``), same machine, same run, same files:

5. The first request of a 512-px webp thumbnail of a 24-megapixel JPEG (made, stored, sent)
   against ``vipsthumbnail`` making the same size; goal <= 1.5 x its time.
6. 16 concurrent first requests for 16 different 24-MP images: wall time (against 16
   ``vipsthumbnail`` processes at once) and the server's peak RSS (goal < 400 MiB).
7. A cached variant: requests/s against the direct link of an original of the same size
   (goal >= 0.9 x).

    python bench/variants.py [--rounds 5] [--seconds 8] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyvips
from common import (
    Openpan,
    PeakMemory,
    alternate,
    deadline,
    ensure_tools,
    machine,
    median,
    mib,
    table,
    workdir,
    wrk,
)

WIDTH, HEIGHT = 6000, 4000  # 24 megapixels
QUERY = "?w=512&format=webp"


def ensure_vipsthumbnail() -> None:
    if shutil.which("vipsthumbnail") is not None:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit("missing vipsthumbnail: install it (apt-get install libvips-tools)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "libvips-tools"], check=True, env=env, timeout=900
    )


def photo(path: Path, seed: int) -> Path:
    """A photo-like 24-MP JPEG (smooth shapes and fine grain, as a camera's), unlike others."""
    smooth = pyvips.Image.perlin(WIDTH, HEIGHT, cell_size=400, seed=seed) * 90 + 128
    grain = pyvips.Image.gaussnoise(WIDTH, HEIGHT, sigma=6, mean=0)
    bands = [(smooth + grain).cast("uchar"), (smooth * 0.8 + 30).cast("uchar")]
    image = bands[0].bandjoin([bands[1], (255 - smooth).cast("uchar")])
    image.jpegsave(str(path), Q=90)
    return path


def vipsthumbnail(source: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["vipsthumbnail", str(source), "--size", "512", "-o", f"{out}[Q=80,strip]"],
        check=True,
        timeout=120,
    )
    return time.perf_counter() - started


def first_request(url: str) -> float:
    started = time.perf_counter()
    response = httpx.get(url, timeout=120)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="first requests timed per side")
    parser.add_argument("--seconds", type=int, default=8, help="per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    deadline(900 + 4 * args.rounds * (args.seconds + 5))
    ensure_tools()
    ensure_vipsthumbnail()
    version = subprocess.run(
        ["vipsthumbnail", "--vips-version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    rows: list[list[str]] = []
    with workdir() as root:
        print("making test images ...", flush=True)
        with ThreadPoolExecutor(2) as pool:
            images = list(
                pool.map(lambda n: photo(root / f"photo{n}.jpg", n), range(args.rounds + 16))
            )
        server = Openpan(root / "openpan")
        try:
            server.start()
            assert server.process is not None
            links = []
            for number, image in enumerate(images):
                file_id, _ = server.upload(image, f"photo{number}.jpg")
                links.append(server.link(file_id))
            singles, crowd = links[: args.rounds], links[args.rounds :]
            out = root / "thumbs"
            out.mkdir()

            # 5. One first request at a time, interleaved with vipsthumbnail on the same file.
            served: list[float] = []
            made: list[float] = []

            def run_openpan() -> float:
                served.append(first_request(singles[len(served)] + QUERY))
                return served[-1]

            def run_vips() -> float:
                source = images[len(made)]
                made.append(vipsthumbnail(source, out / f"{source.stem}.webp"))
                return made[-1]

            alternate(args.rounds, {"vipsthumbnail": run_vips, "openpan": run_openpan})
            ratio = median(served) / median(made)
            rows.append(
                [
                    "5. first request, 512-px webp of a 24-MP JPEG: seconds",
                    f"{median(made):.3f}",
                    f"{median(served):.3f}",
                    f"{ratio:.2f}",
                    "<= 1.5",
                    "yes" if ratio <= 1.5 else "NO",
                ]
            )
            rows.append(
                [
                    "   (each run, s)",
                    " ".join(f"{t:.3f}" for t in made),
                    " ".join(f"{t:.3f}" for t in served),
                    "",
                    "",
                    "",
                ]
            )

            # 6. 16 first requests at once, for 16 different images.
            with ThreadPoolExecutor(16) as pool, PeakMemory(server.process.pid) as memory:
                started = time.perf_counter()
                list(pool.map(lambda url: first_request(url + QUERY), crowd))
                crowd_time = time.perf_counter() - started
            sources = images[args.rounds :]
            started = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda s: vipsthumbnail(s, out / f"crowd-{s.stem}.webp"), sources))
            vips_crowd = time.perf_counter() - started
            rows.append(
                [
                    "6. 16 first requests at once, 16 different 24-MP images: seconds",
                    f"{vips_crowd:.2f}",
                    f"{crowd_time:.2f}",
                    f"{crowd_time / vips_crowd:.2f}",
                    "",
                    "",
                ]
            )
            rows.append(
                [
                    "   openpan's peak RSS meanwhile",
                    "",
                    mib(memory.peak),
                    "",
                    "< 400 MiB",
                    "yes" if memory.peak < 400 * 1024 * 1024 else "NO",
                ]
            )

            # 7. A cached variant against an original of the same size, both by direct link.
            variant_url = singles[0] + QUERY
            variant = httpx.get(variant_url, timeout=60).content
            same_size = root / "same-size.webp"
            same_size.write_bytes(variant[:-16] + os.urandom(16))  # same size, other bytes
            original_id, _ = server.upload(same_size, "same-size.webp")
            original_url = server.link(original_id)
            for url in (variant_url, original_url):
                wrk(url, args.connections, 1)  # warm-up
            results = alternate(
                args.rounds,
                {
                    "original": lambda: (
                        wrk(original_url, args.connections, args.seconds).requests_per_second
                    ),
                    "variant": lambda: (
                        wrk(variant_url, args.connections, args.seconds).requests_per_second
                    ),
                },
            )
            original, cached = median(results["original"]), median(results["variant"])
            rows.append(
                [
                    f"7. cached variant ({len(variant):,} B) vs original link, req/s "
                    "(nginx column: the original)",
                    f"{original:,.0f}",
                    f"{cached:,.0f}",
                    f"{cached / original:.2f}",
                    ">= 0.9",
                    "yes" if cached / original >= 0.9 else "NO",
                ]
            )
            rows.append(
                [
                    "   (each run, req/s)",
                    " ".join(f"{r:,.0f}" for r in results["original"]),
                    " ".join(f"{r:,.0f}" for r in results["variant"]),
                    "",
                    "",
                    "",
                ]
            )
        finally:
            server.stop()
    print(f"machine: {machine()}")
    print(
        f"reference: {version}; openpan: pyvips {pyvips.__version__}, libvips "
        f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    )
    print(table(rows, ["measurement", "vipsthumbnail", "openpan", "ratio", "target", "met"]))


if __name__ == "__main__":
    main()
