"""14. Mixed load with the real service's rate limits on: ``--connections`` clients (spread
over ``--users`` users) for ``--seconds``, each looping over the operations a real client
mixes — list a folder, an image's detail, upload a small image (create, slice, complete),
fetch a public link and a thumbnail, a cloud-disk listing and a download link. Reports, per
operation, how many ran, p50 and p99 latency, the intended 429 refusals, and every other error
(goal: 0).

    python bench/load.py [--connections 48] [--users 8] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

import httpx
from common import Openpan, machine, table, workdir

PLATFORM = {"Platform": "open_platform"}
OPENPAN = [sys.executable, "-m", "openpan"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.limited: dict[str, int] = defaultdict(int)
        self.errors: dict[str, list[str]] = defaultdict(list)

    def record(self, op: str, seconds: float, outcome: str) -> None:
        self.latency[op].append(seconds)
        if outcome == "429":
            self.limited[op] += 1
        elif outcome != "ok":
            self.errors[op].append(outcome)


async def envelope(response: httpx.Response) -> str:
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    code = response.json().get("code")
    return "ok" if code == 0 else "429" if code == 429 else f"code {code}"


async def client_loop(base: str, token: str, stop: float, stats: Stats, seed: int) -> None:
    headers = {"Authorization": f"Bearer {token}", **PLATFORM}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        made: list[tuple[str, str]] = []  # (fileID, link)
        number = 0
        while time.monotonic() < stop:
            number += 1

            async def timed(op: str, work: Any) -> Any:
                started = time.perf_counter()
                try:
                    outcome, value = await work
                except httpx.HTTPError as exc:
                    outcome, value = f"{type(exc).__name__}", None
                stats.record(op, time.perf_counter() - started, outcome)
                return value

            async def listing() -> tuple[str, Any]:
                r = await http.post(
                    "/api/v1/oss/file/list", json={"parentFileId": "", "limit": 100}
                )
                return await envelope(r), None

            async def upload(number: int) -> tuple[str, Any]:
                data = b"\x89PNG\r\n\x1a\n" + os.urandom(20_000) + f"{seed}-{number}".encode()
                body = {
                    "parentFileID": "",
                    "filename": f"l{seed}-{number}.png",
                    "etag": hashlib.md5(data).hexdigest(),
                    "size": len(data),
                    "type": 1,
                }
                r = await http.post("/upload/v1/oss/file/create", json=body)
                outcome = await envelope(r)
                if outcome != "ok":
                    return outcome, None
                pre = r.json()["data"]["preuploadID"]
                r = await http.post(
                    "/upload/v1/oss/file/get_upload_url", json={"preuploadID": pre, "sliceNo": 1}
                )
                if (outcome := await envelope(r)) != "ok":
                    return outcome, None
                put = await http.put(r.json()["data"]["presignedURL"], content=data)
                if put.status_code != 200:
                    return f"slice HTTP {put.status_code}", None
                r = await http.post(
                    "/upload/v1/oss/file/upload_complete", json={"preuploadID": pre}
                )
                if (outcome := await envelope(r)) != "ok":
                    return outcome, None
                return "ok", r.json()["data"]["fileID"]

            async def detail(file_id: str) -> tuple[str, Any]:
                r = await http.get("/api/v1/oss/file/detail", params={"fileID": file_id})
                outcome = await envelope(r)
                return outcome, r.json()["data"]["downloadURL"] if outcome == "ok" else None

            async def link(url: str, query: str = "") -> tuple[str, Any]:
                r = await http.get(url + query)
                return ("ok" if r.status_code == 200 else f"HTTP {r.status_code}"), None

            async def disk_list() -> tuple[str, Any]:
                r = await http.get("/api/v2/file/list", params={"parentFileId": 0, "limit": 100})
                return await envelope(r), None

            async def info() -> tuple[str, Any]:
                return await envelope(await http.get("/api/v1/user/info")), None

            await timed("list", listing())
            file_id = await timed("upload", upload(number))
            if file_id:
                url = await timed("detail", detail(file_id))
                if url:
                    made.append((file_id, url))
            if made:
                _, url = made[number % len(made)]
                await timed("link", link(url))
                await timed("thumbnail", link(url, "?w=128&format=webp"))
            await timed("disk list", disk_list())
            await timed("user info", info())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=48)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    print(machine())
    with workdir() as root:
        server = Openpan(root / "openpan", env={"OPENPAN_RATE_LIMIT": "true"})
        server.start()
        try:
            tokens = [server.token]
            data_dir = root / "openpan" / "data"
            for number in range(1, args.users):
                done = subprocess.run(
                    [
                        *OPENPAN,
                        "user",
                        "add",
                        f"load{number}",
                        "--json",
                        "--data-dir",
                        str(data_dir),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                creds = json.loads(done.stdout.strip().splitlines()[-1])
                answer = httpx.post(
                    server.url + "/api/v1/access_token",
                    json={"clientID": creds["client_id"], "clientSecret": creds["client_secret"]},
                    headers=PLATFORM,
                ).json()
                tokens.append(answer["data"]["accessToken"])
            stats = Stats()

            async def run() -> None:
                stop = time.monotonic() + args.seconds
                await asyncio.gather(
                    *(
                        client_loop(server.url, tokens[i % len(tokens)], stop, stats, i)
                        for i in range(args.connections)
                    )
                )

            asyncio.run(run())
        finally:
            server.stop()
    rows = []
    for op, values in stats.latency.items():
        errors = stats.errors[op]
        kinds = ", ".join(sorted(set(errors)))[:60]
        rows.append(
            [
                op,
                str(len(values)),
                f"{percentile(values, 0.5) * 1000:.1f}",
                f"{percentile(values, 0.99) * 1000:.1f}",
                str(stats.limited[op]),
                f"{len(errors)}" + (f" ({kinds})" if kinds else ""),
            ]
        )
    print(
        f"14. {args.connections} connections, {args.users} users, {args.seconds} s, rate limits on"
    )
    print(table(rows, ["operation", "count", "p50 ms", "p99 ms", "429 (intended)", "other errors"]))
    total = sum(len(e) for e in stats.errors.values())
    print(f"other errors: {total} (goal 0)")


if __name__ == "__main__":
    main()
