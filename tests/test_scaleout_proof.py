"""The whole of scale-out mode at once: two API processes and two workers, each on its own port
or process, sharing PostgreSQL (metadata and job broker) and an S3 server (blobs).

Files are uploaded through one API process and read and deleted through the other; offline
downloads run on the workers, one of which is killed with ``kill -9`` in the middle of one;
every file is checked by md5 at the end, and nothing is left half-made.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import scaleout
from scaleout import (
    Cluster,
    Origin,
    S3Server,
    blob_counts_agree,
    cluster_env,
    disk_upload,
    needs_postgres,
    wait_for,
)

# Fixtures shared with the other scale-out tests.
s3_server = scaleout.s3_server
origin_server = scaleout.origin_server

MiB = 1024 * 1024
pytestmark = scaleout.ONCE


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def full_cluster(s3_server: S3Server, tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    needs_postgres()
    bucket = s3_server.new_bucket()
    group = Cluster(tmp=tmp_path, env=cluster_env(s3_server, bucket))
    yield group, bucket
    group.stop()


def test_two_api_processes_and_two_workers_on_postgresql_and_s3(
    full_cluster: tuple[Cluster, str], s3_server: S3Server, origin_server: Origin
) -> None:
    cluster, bucket = full_cluster
    first_api, second_api = cluster.add_api(), cluster.add_api()
    first_api.start()
    second_api.start()
    assert first_api.port != second_api.port
    creds = first_api.take_user()
    via_first, via_second = first_api.client(creds), second_api.client(creds)
    workers = [cluster.add_worker(), cluster.add_worker()]
    try:
        workers[0].start()
        # An offline download that the first worker is in the middle of when it is killed.
        slow = os.urandom(4 * MiB)
        origin_server.files["slow.bin"] = slow
        origin_server.gated.add("slow.bin")
        tasks = {
            via_first.ok(
                "POST",
                "/api/v1/offline/download",
                {"url": origin_server.url("slow.bin"), "callBackUrl": origin_server.callback_url},
            )["taskID"]: slow
        }
        wait_for(lambda: origin_server.halves_sent == 1, "the first worker to be mid-download")
        workers[1].start()

        # Uploads through the first API process: an image in S3 slices, verified by a worker
        # (async), and a cloud-disk file verified in the request.
        image = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(12 * MiB)
        image_id = via_first.oss_upload(image, "big.jpg")
        document = os.urandom(7 * MiB)
        document_id = int(disk_upload(via_first, document, "doc.bin")["fileID"])
        for number in range(3):
            data = os.urandom(1 * MiB + number)
            origin_server.files[f"f{number}.bin"] = data
            client = (via_first, via_second)[number % 2]
            task = client.ok(
                "POST",
                "/api/v1/offline/download",
                {
                    "url": origin_server.url(f"f{number}.bin"),
                    "callBackUrl": origin_server.callback_url,
                },
            )["taskID"]
            tasks[task] = data

        workers[0].kill9()
        origin_server.gate.set()

        def all_done() -> bool:
            statuses = [
                via_second.ok("GET", "/api/v1/offline/download/process", {"taskID": t})["status"]
                for t in tasks
            ]
            assert 1 not in statuses, statuses  # none failed
            return all(status == 2 for status in statuses)

        wait_for(all_done, "every offline download to succeed")
        wait_for(lambda: len(origin_server.callbacks) >= len(tasks), "the callbacks")
        by_url = {c["url"]: c for c in origin_server.callbacks}
        assert len(origin_server.callbacks) == len(by_url) == len(tasks)  # one each

        # Everything read back through the second API process, md5 by md5.
        detail = via_second.ok("GET", "/api/v1/oss/file/detail", {"fileID": image_id})
        assert md5(httpx.get(detail["downloadURL"], timeout=60).content) == md5(image)
        expected = {document_id: document}
        for data in tasks.values():
            name = next(n for n, d in origin_server.files.items() if d is data)
            callback = by_url[origin_server.url(name)]
            assert callback["status"] == 0, callback
            expected[int(callback["fileID"])] = data
        for file_id, data in expected.items():
            link = via_second.ok("GET", "/api/v1/file/download_info", {"fileId": file_id})
            assert md5(httpx.get(link["downloadUrl"], timeout=60).content) == md5(data)

        # Deleted through the second process: gone for the first one and from the bucket.
        via_second.ok("POST", "/api/v1/oss/file/delete", {"fileIDs": [image_id]})
        assert httpx.get(detail["downloadURL"]).status_code == 404
        gone = via_first.get("/api/v1/oss/file/detail", {"fileID": image_id})
        assert gone["code"] == 5066
        assert not [k for k in s3_server.keys(bucket) if md5(image) in k]
        assert not s3_server.keys(bucket, "blobs-root/uploads/")
        blob_counts_agree(first_api)
    finally:
        via_first.close()
        via_second.close()
