"""Offline downloads across a server crash, and under the concurrency limits."""

from __future__ import annotations

import os
import time

import diskkit
from conftest import OFFLINE_ENV, Server
from offline_kit import DEFAULT_DIR, DISK_CREATE, md5, origin_at, process, submit, succeeded, wait


def test_a_crash_mid_download_resumes_from_the_bytes_on_disk(fresh_server: Server) -> None:
    fresh_server.env.update(OFFLINE_ENV)
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())
    data = os.urandom(3_000_000)
    try:
        with origin_at() as origin:
            url = origin.file("/big.bin", data, rate=700_000)
            task_id = submit(api, url)
            wait(api, task_id, until=lambda p: p["process"] >= 20)
            fresh_server.kill9()
            fresh_server.start()
            succeeded(api, task_id)
            requests = origin.requests("/big.bin")
            ranges = [r.headers.get("range") for r in requests]
            assert ranges[0] is None and len(requests) == 2, ranges
            start = int(str(ranges[1]).removeprefix("bytes=").rstrip("-"))
            assert 600_000 <= start < len(data), ranges  # at least the 20% already reported
        folder = int(diskkit.names(api)[DEFAULT_DIR]["fileId"])
        entry = diskkit.names(api, folder)["big.bin"]
        assert entry["etag"] == md5(data)
        assert diskkit.download(api, int(entry["fileId"])) == data
    finally:
        api.close()


def test_tasks_beyond_the_limits_wait_their_turn(fresh_server: Server) -> None:
    fresh_server.env.update(
        OFFLINE_ENV,
        OPENPAN_OFFLINE_MAX_ACTIVE="2",
        OPENPAN_OFFLINE_MAX_ACTIVE_PER_USER="1",
        OPENPAN_OFFLINE_MAX_UNFINISHED_PER_USER="3",
    )
    fresh_server.start()
    alice = fresh_server.client(fresh_server.take_user())
    bob = fresh_server.client(fresh_server.take_user())
    try:
        with origin_at() as origin:
            blobs = {f"/a{i}": os.urandom(300_000) for i in range(3)} | {"/b0": os.urandom(300_000)}
            for path, data in blobs.items():
                origin.file(path, data, rate=300_000)
            mine = [submit(alice, origin.url(f"/a{i}")) for i in range(3)]
            theirs = submit(bob, origin.url("/b0"))
            # The real service's "too many tasks" answer, as configured: three unfinished at most.
            refused = alice.post(DISK_CREATE, {"url": origin.url("/a0")})
            assert refused["code"] == 1 and "too many" in refused["message"], refused

            deadline = time.monotonic() + 30
            while len(origin.seen) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            # Each origin answer takes a second: while the first two run, nothing else starts.
            time.sleep(0.3)
            started = {r.path for r in origin.seen}
            assert started == {"/a0", "/b0"}, started  # one of Alice's at a time; Bob not held up
            assert [process(alice, t)["status"] for t in mine[1:]] == [0, 0]
            assert [process(alice, t)["process"] for t in mine[1:]] == [0.0, 0.0]
            for task_id in [*mine, theirs]:
                succeeded(alice if task_id in mine else bob, task_id)
            order = [r.path for r in origin.seen if r.path.startswith("/a")]
            assert order == ["/a0", "/a1", "/a2"]  # oldest first
            assert alice.ok("POST", DISK_CREATE, {"url": origin.url("/a0")})["taskID"]
    finally:
        alice.close()
        bob.close()
