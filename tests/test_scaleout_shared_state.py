"""What one process kept in memory is shared by every API process in scale-out mode: rate
limits and traffic counters. And an API process stopped with SIGTERM finishes the requests it
is serving before it exits.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import scaleout
from scaleout import Cluster, cluster_env, needs_postgres, wait_for

MiB = 1024 * 1024
pytestmark = scaleout.ONCE


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two API processes (and no worker) on one database, rate limits on."""
    needs_postgres()
    tmp = tmp_path_factory.mktemp("shared-state")
    env = cluster_env(
        OPENPAN_STORAGE_URL=f"file://{tmp / 'shared-blobs'}",
        OPENPAN_RATE_LIMIT="true",
        OPENPAN_TRAFFIC_FLUSH_INTERVAL="0.5",
        OPENPAN_SYNC_COMPLETE_MAX=str(64 * MiB),  # no worker: uploads complete in the request
    )
    group = Cluster(tmp=tmp, env=env)
    for api in (group.add_api(), group.add_api()):
        api.start()
    yield group
    group.stop()


def test_rate_limits_hold_across_api_processes(cluster: Cluster) -> None:
    first, second = cluster.apis[:2]
    creds = first.take_user()
    clients = [first.client(creds), second.client(creds)]
    try:
        # /api/v1/file/list allows a free user one request per 5 seconds.
        assert clients[0].get("/api/v1/file/list", {"parentFileId": 0, "limit": 10})["code"] == 0
        refused = clients[1].get("/api/v1/file/list", {"parentFileId": 0, "limit": 10})
        assert refused["code"] == 429 and "/api/v1/file/list" in refused["message"]
        # Separate limits per endpoint and per client are kept apart.
        assert clients[1].get("/api/v1/user/info")["code"] == 0
        other = first.take_user()
        stranger = second.client(other)
        try:
            listed = stranger.get("/api/v1/file/list", {"parentFileId": 0, "limit": 10})
            assert listed["code"] == 0
        finally:
            stranger.close()
    finally:
        for client in clients:
            client.close()


def test_link_traffic_from_every_process_adds_up(cluster: Cluster) -> None:
    first, second = cluster.apis[:2]
    creds = first.take_user()
    client = first.client(creds)
    try:
        data = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(200_000)
        file_id = client.oss_upload(data, "counted.jpg")
        link = client.ok("GET", "/api/v1/oss/file/detail", {"fileID": file_id})["downloadURL"]
        path = link.split("/", 3)[3]
        for server in (first, second, second):
            assert httpx.get(f"{server.url}/{path}").content == data
        assert httpx.get(f"{first.url}/{path}", headers={"Range": "bytes=0-99"}).status_code == 206

        def counted() -> bool:
            detail = client.ok("GET", "/api/v1/oss/file/detail", {"fileID": file_id})
            return int(detail["totalTraffic"]) == 3 * len(data) + 100

        wait_for(counted, "every process's bytes to be written", timeout=30)
    finally:
        client.close()


def test_a_variant_asked_of_every_process_at_once_is_made_once(cluster: Cluster) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from imagebed import query
    from test_link_variants import photo

    first, second = cluster.apis[:2]
    client = first.client(first.take_user())
    try:
        file_id = client.oss_upload(photo(1600, 1200), "shared.jpg")
        link = client.ok("GET", "/api/v1/oss/file/detail", {"fileID": file_id})["downloadURL"]
        path = link.split("/", 3)[3] + "?w=512&format=webp"
        urls = [f"{server.url}/{path}" for server in (first, second) * 6]
        with ThreadPoolExecutor(12) as pool:
            bodies = list(pool.map(lambda url: httpx.get(url, timeout=60).content, urls))
        assert len(set(bodies)) == 1
        rows = query(
            first,
            "SELECT v.key FROM blob_variants v JOIN files f ON f.blob_id = v.blob_id "
            "WHERE f.oss_id = ?",
            file_id,
        )
        assert len(rows) == 1 and rows[0][0]
        assert (cluster.tmp / "shared-blobs" / "blobs" / rows[0][0]).read_bytes() == bodies[0]
    finally:
        client.close()


def test_sigterm_lets_the_request_in_flight_finish(cluster: Cluster) -> None:
    server = cluster.add_api()  # a process of its own: this test stops it
    server.start()
    client = server.client(cluster.apis[0].take_user())
    try:
        data = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(48 * MiB)
        file_id = client.oss_upload(data, "long.jpg")
        link = client.ok("GET", "/api/v1/oss/file/detail", {"fileID": file_id})["downloadURL"]
        assert server.process is not None
        process = server.process
        digest = hashlib.md5()
        with httpx.Client(timeout=60) as http, http.stream("GET", link) as response:
            chunks = response.iter_bytes(64 * 1024)
            digest.update(next(chunks))
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(httpx.TransportError):  # no new connections meanwhile
                httpx.get(server.url + "/healthz", timeout=2)
            for chunk in chunks:  # the download in flight is served to the end
                digest.update(chunk)
        assert digest.hexdigest() == hashlib.md5(data).hexdigest()
        # uvicorn re-raises the signal once its graceful shutdown is done.
        assert process.wait(30) in (0, -signal.SIGTERM)
    finally:
        client.close()
