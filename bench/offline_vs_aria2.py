"""Offline downloads vs aria2, side by side from the same local nginx.

1. Many: 200 files of 5 MB, submitted at once. openpan: wall time from the first submit to the
   last ``status: 2`` (bytes hashed, durable, file rows made); aria2c with its default
   concurrency, downloading the same URLs into a directory. Target: openpan <= 1.25 x aria2.
2. Big: one 1 GiB file. openpan MB/s (submit to ``status: 2``) vs ``aria2c -x1``. Target:
   >= 0.8 x aria2, with the server's peak memory (RSS) under 150 MB.

Each openpan run gets a fresh server and data directory (identical bytes already stored would
make it an instant copy). Runs alternate (aria2, openpan, aria2, ...) so the rest of the machine
weighs on both alike; medians are reported. Everything listens on 127.0.0.1.

    python bench/offline_vs_aria2.py [--rounds 3] [--files 200] [--size 5000000]
        [--big 1073741824] [--skip-big] [--skip-many]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from common import (
    HOST,
    MiB,
    Nginx,
    Openpan,
    PeakMemory,
    alternate,
    deadline,
    ensure_tools,
    machine,
    median,
    random_file,
    table,
    workdir,
)

MANY_TARGET = 1.25
BIG_TARGET = 0.8
RSS_LIMIT = 150 * 1000 * 1000
CREATE = "/api/v1/offline/download"
PROCESS = "/api/v1/offline/download/process"


def ensure_aria2() -> None:
    if shutil.which("aria2c"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit("missing aria2c: install it (apt-get install aria2)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "aria2"], check=True, env=env, timeout=900)


def settle() -> None:
    """Write out what the previous run left in the page cache, outside any timing."""
    os.sync()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def aria2(urls: list[str], into: Path, cpu: list[float], *options: str) -> float:
    """Seconds for ``aria2c`` to download ``urls`` into ``into`` (its defaults otherwise); the
    CPU time it used goes to ``cpu``."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    listing = into.parent / "aria2-urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    before = os.times()
    started = time.perf_counter()
    subprocess.run(
        ["aria2c", "-q", "-d", str(into), "-i", str(listing), *options],
        check=True,
        timeout=900,
    )
    elapsed = time.perf_counter() - started
    after = os.times()
    cpu.append(
        after.children_user + after.children_system - before.children_user - before.children_system
    )
    got = sorted(p.stat().st_size for p in into.iterdir())
    if len(got) != len(urls):
        raise RuntimeError(f"aria2c left {len(got)} files of {len(urls)}")
    shutil.rmtree(into, ignore_errors=True)
    settle()
    return elapsed


async def _offline(server: Openpan, urls: list[str]) -> float:
    """Submit every URL at once, then poll until each task has succeeded; seconds taken.

    The client is aiohttp: it shares the two cores with the server, and httpx's asyncio client
    spent about 1.9 CPU seconds on these few hundred requests, about four times aiohttp's."""
    headers = {"Authorization": f"Bearer {server.token}", "Platform": "open_platform"}
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(
        server.url, headers=headers, connector=connector, timeout=timeout
    ) as http:

        async def call(method: str, path: str, **kwargs: Any) -> Any:
            async with http.request(method, path, **kwargs) as response:
                return await response.json()

        async def submit(url: str) -> int:
            answer = await call("POST", CREATE, json={"url": url})
            if answer["code"] != 0:
                raise RuntimeError(f"create: {answer}")
            return int(answer["data"]["taskID"])

        started = time.perf_counter()
        task_ids = await asyncio.gather(*(submit(url) for url in urls))
        # Tasks end roughly in order: wait for each in turn, so polling stays light (every
        # 0.2 s: the end is seen within that; clients of the real service poll once a second).
        for task_id in task_ids:
            while True:
                answer = await call("GET", PROCESS, params={"taskID": task_id})
                status = answer["data"]["status"]
                if status == 2:
                    break
                if status == 1:
                    raise RuntimeError(f"task {task_id} failed: {answer}")
                await asyncio.sleep(0.2)
        return time.perf_counter() - started


def openpan(
    root: Path,
    urls: list[str],
    peaks: list[int],
    cpu: list[float],
    checkout: Path | None = None,
) -> float:
    """Seconds for a fresh openpan server to download ``urls``; its peak RSS goes to ``peaks``,
    the CPU time it used meanwhile to ``cpu``. ``checkout``: run that version of openpan rather
    than the installed one (``offline_ab.py``)."""
    shutil.rmtree(root, ignore_errors=True)
    server = Openpan(root, env={"OPENPAN_FETCH_ALLOW": f"{HOST}/32"})
    if checkout is not None:
        # -P: the working directory is not searched first, so PYTHONPATH picks the version.
        server.env["PYTHONPATH"] = str(checkout)
        server.command = [sys.executable, "-P", "-m", "openpan"]
    server.start()
    try:
        assert server.process is not None
        before = cpu_seconds(server.process.pid)
        with PeakMemory(server.process.pid) as memory:
            elapsed = asyncio.run(_offline(server, urls))
        cpu.append(cpu_seconds(server.process.pid) - before)
        peaks.append(memory.peak)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        settle()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", type=int, default=5_000_000)
    parser.add_argument("--big", type=int, default=1024**3)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-many", action="store_true")
    args = parser.parse_args()
    deadline(600 + args.rounds * 600)
    ensure_tools()
    ensure_aria2()
    rows: list[list[str]] = []
    with workdir() as root:
        nginx = Nginx(root / "nginx")
        nginx.start()
        try:
            if not args.skip_many:
                www = root / "nginx" / "www"
                urls = []
                for number in range(args.files):
                    random_file(www / f"f{number}.bin", args.size).chmod(0o644)
                    urls.append(f"{nginx.url}/f{number}.bin")
                peaks: list[int] = []
                cpu: dict[str, list[float]] = {"aria2": [], "openpan": []}
                times = alternate(
                    args.rounds,
                    {
                        "aria2": lambda: aria2(urls, root / "aria2", cpu["aria2"]),
                        "openpan": lambda: openpan(root / "openpan", urls, peaks, cpu["openpan"]),
                    },
                )
                ratio = median(times["openpan"]) / median(times["aria2"])
                rows.append(
                    [
                        f"{args.files} x {args.size / 1e6:g} MB at once: seconds to the last done",
                        f"{median(times['aria2']):.2f}",
                        f"{median(times['openpan']):.2f}",
                        f"{ratio:.2f}",
                        f"<= {MANY_TARGET}",
                        "yes" if ratio <= MANY_TARGET else "NO",
                    ]
                )
                rows.append(["  (each run, s)", _runs(times["aria2"]), _runs(times["openpan"])])
                rows.append(["  CPU seconds used (median)", *_cpu(cpu)])
                rows.append(["  server peak RSS", "", f"{max(peaks) / 1e6:.0f} MB"])
                for number in range(args.files):
                    (www / f"f{number}.bin").unlink()
            if not args.skip_big:
                big = random_file(root / "nginx" / "www" / "big.bin", args.big)
                big.chmod(0o644)
                url = [f"{nginx.url}/big.bin"]
                peaks = []
                cpu = {"aria2": [], "openpan": []}
                times = alternate(
                    args.rounds,
                    {
                        "aria2": lambda: aria2(url, root / "aria2", cpu["aria2"], "-x1"),
                        "openpan": lambda: openpan(root / "openpan", url, peaks, cpu["openpan"]),
                    },
                )
                speed = {name: args.big / median(values) / MiB for name, values in times.items()}
                ratio = speed["openpan"] / speed["aria2"]
                rows.append(
                    [
                        f"one {args.big / 1024**3:g} GiB file: MiB/s (aria2 -x1)",
                        f"{speed['aria2']:.0f}",
                        f"{speed['openpan']:.0f}",
                        f"{ratio:.2f}",
                        f">= {BIG_TARGET}",
                        "yes" if ratio >= BIG_TARGET else "NO",
                    ]
                )
                rows.append(["  (each run, s)", _runs(times["aria2"]), _runs(times["openpan"])])
                rows.append(["  CPU seconds used (median)", *_cpu(cpu)])
                rows.append(
                    [
                        "  server peak RSS",
                        "",
                        f"{max(peaks) / 1e6:.0f} MB",
                        "",
                        f"< {RSS_LIMIT / 1e6:.0f} MB",
                        "yes" if max(peaks) < RSS_LIMIT else "NO",
                    ]
                )
        finally:
            nginx.stop()
    print(f"machine: {machine()}")
    header = ["measurement", "aria2", "openpan", "ratio", "target", "met"]
    print(table([r + [""] * (len(header) - len(r)) for r in rows], header))


def _cpu(cpu: dict[str, list[float]]) -> list[str]:
    return [f"{median(cpu['aria2']):.2f}", f"{median(cpu['openpan']):.2f}"]


def _runs(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
