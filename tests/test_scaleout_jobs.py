"""Scale-out background work: API processes run no jobs, workers do, a worker killed with
``kill -9`` mid-download has its job resumed by another worker once its heartbeat stops, and a
worker stopped with SIGTERM hands its running job back at once. Callbacks are sent once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pgdb
import pytest
import scaleout
from conftest import Api
from scaleout import Cluster, Origin, wait_for

# Fixtures shared with the other scale-out tests.
cluster = scaleout.cluster
origin_server = scaleout.origin_server

MiB = 1024 * 1024
pytestmark = scaleout.ONCE


@pytest.fixture
def origin(origin_server: Origin) -> Origin:
    """The origin serving one 3 MiB video, held at the gate after its first half."""
    origin_server.files["video.mp4"] = os.urandom(3 * MiB)
    origin_server.gated.add("video.mp4")
    return origin_server


def offline_task(api: Api, origin: Origin) -> int:
    created = api.ok(
        "POST",
        "/api/v1/offline/download",
        {
            "url": origin.url("video.mp4"),
            "fileName": "video.mp4",
            "callBackUrl": origin.callback_url,
        },
    )
    return int(created["taskID"])


def task_status(api: Api, task_id: int) -> int:
    return int(api.ok("GET", "/api/v1/offline/download/process", {"taskID": task_id})["status"])


def downloaded_md5(api: Api, file_id: int) -> str:
    link = api.ok("GET", "/api/v1/file/download_info", {"fileId": file_id})["downloadUrl"]
    body = api.http.get(link)
    assert body.status_code == 200
    return hashlib.md5(body.content).hexdigest()


def outbox(cluster: Cluster) -> list[tuple[Any, ...]]:
    return pgdb.query(
        cluster.env["OPENPAN_DATABASE_URL"], "SELECT kind, status, attempts FROM jobs ORDER BY id"
    )


def test_api_processes_run_no_jobs_and_the_outbox_waits_for_a_worker(
    cluster: Cluster,
    origin: Origin,
) -> None:
    api_server = cluster.add_api()
    api_server.start()
    api = api_server.client(api_server.take_user())
    try:
        origin.gate.set()
        task_id = offline_task(api, origin)
        time.sleep(2)  # time enough for an in-process runner to have started it
        assert origin.halves_sent == 0 and task_status(api, task_id) == 0
        assert ("offline.download", "relayed", 0) in outbox(cluster)
        # A row the relay never handed over (its process died right after the commit) is
        # handed over by any other process's relay.
        pgdb.query(
            cluster.env["OPENPAN_DATABASE_URL"],
            "INSERT INTO jobs (kind, payload, status, attempts, run_after, created_at, updated_at)"
            " VALUES ('upload.finish', '{\"upload_id\": \"gone\"}', 'queued', 0,"
            " now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc')",
        )
        cluster.add_worker().start()
        wait_for(lambda: task_status(api, task_id) == 2, "the worker to finish the download")
        wait_for(lambda: ("upload.finish", "done", 1) in outbox(cluster), "the orphaned row")
        wait_for(lambda: len(origin.callbacks) == 1, "the callback")
        assert origin.callbacks[0]["status"] == 0
        file_id = origin.callbacks[0]["fileID"]
        assert downloaded_md5(api, file_id) == hashlib.md5(origin.files["video.mp4"]).hexdigest()
    finally:
        api.close()


def test_a_worker_killed_mid_download_is_replaced_and_the_callback_is_sent_once(
    cluster: Cluster,
    origin: Origin,
) -> None:
    api_server = cluster.add_api()
    api_server.start()
    api = api_server.client(api_server.take_user())
    try:
        first = cluster.add_worker()
        first.start()
        task_id = offline_task(api, origin)
        wait_for(lambda: origin.halves_sent == 1, "the first worker to be mid-download")
        second = cluster.add_worker()
        second.start()
        first.kill9()
        origin.gate.set()
        # The second worker takes over once the first one's heartbeat is older than 4 s.
        wait_for(lambda: task_status(api, task_id) == 2, "the second worker to take over")
        assert origin.halves_sent == 2
        assert "Starting job" in second.log()
        wait_for(lambda: len(origin.callbacks) >= 1, "the callback")
        time.sleep(1.5)  # a duplicate callback would arrive meanwhile
        assert len(origin.callbacks) == 1 and origin.callbacks[0]["status"] == 0
        file_id = origin.callbacks[0]["fileID"]
        assert downloaded_md5(api, file_id) == hashlib.md5(origin.files["video.mp4"]).hexdigest()
        root = api.ok("GET", "/api/v2/file/list", {"parentFileId": 0, "limit": 100})
        folder = next(f for f in root["fileList"] if f["filename"] == "来自:离线下载")
        inside = api.ok(
            "GET", "/api/v2/file/list", {"parentFileId": folder["fileId"], "limit": 100}
        )
        assert [f["filename"] for f in inside["fileList"]] == ["video.mp4"]  # made once
        jobs = outbox(cluster)
        assert ("offline.download", "done", 2) in jobs  # run twice: killed, then resumed
    finally:
        api.close()


def test_sigterm_hands_the_running_job_back_at_once(
    cluster: Cluster,
    origin: Origin,
) -> None:
    api_server = cluster.add_api()
    api_server.start()
    api = api_server.client(api_server.take_user())
    try:
        first = cluster.add_worker()
        first.start()
        task_id = offline_task(api, origin)
        wait_for(lambda: origin.halves_sent == 1, "the first worker to be mid-download")
        second = cluster.add_worker()
        second.start()
        started = time.monotonic()
        assert first.stop() == 0  # graceful: exit status 0
        # job_grace is 2 s; far less than the heartbeat timeout a kill would need.
        assert time.monotonic() - started < 15
        assert "handed back" in first.log()
        origin.gate.set()
        wait_for(lambda: task_status(api, task_id) == 2, "the second worker to finish it")
        wait_for(lambda: len(origin.callbacks) == 1, "the callback")
        assert origin.callbacks[0]["status"] == 0
        assert "Starting job" in second.log()
    finally:
        api.close()


def test_settings_that_cannot_work_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPAN_")}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "openpan", *args, "--data-dir", str(tmp_path)],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    no_broker = run("worker")
    assert no_broker.returncode == 2 and "OPENPAN_QUEUE_URL" in no_broker.stdout + no_broker.stderr
    for command in ("worker", "serve"):
        alone = run(command, OPENPAN_QUEUE_URL="postgresql://127.0.0.1/none")
        assert alone.returncode == 2, alone.stdout + alone.stderr
        assert "OPENPAN_DATABASE_URL=postgresql://" in alone.stdout + alone.stderr
    assert not (tmp_path / "openpan.db").exists()  # refused before touching anything
