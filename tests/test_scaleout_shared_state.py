"""What one process kept in memory is shared by every API process in scale-out mode: rate
limits and traffic counters. And an API process stopped with SIGTERM finishes the requests it
is serving before it exits.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time

import httpx
import pytest
import scaleout
from conftest import Server
from scaleout import Cluster, wait_for

cluster = scaleout.cluster  # the fixture, shared with the other scale-out tests

MiB = 1024 * 1024
pytestmark = scaleout.ONCE


def start_pair(cluster: Cluster, **env: str) -> tuple[Server, Server]:
    cluster.env.update(env)
    first, second = cluster.add_api(), cluster.add_api()
    first.start()
    second.start()
    return first, second


def test_rate_limits_hold_across_api_processes(cluster: Cluster) -> None:
    first, second = start_pair(cluster, OPENPAN_RATE_LIMIT="true")
    creds = first.add_user()
    clients = [first.client(creds), second.client(creds)]
    try:
        # /api/v1/file/list allows a free user one request per 5 seconds.
        assert clients[0].get("/api/v1/file/list", {"parentFileId": 0, "limit": 10})["code"] == 0
        refused = clients[1].get("/api/v1/file/list", {"parentFileId": 0, "limit": 10})
        assert refused["code"] == 429 and "/api/v1/file/list" in refused["message"]
        # Separate limits per endpoint and per client are kept apart.
        assert clients[1].get("/api/v1/user/info")["code"] == 0
        other = first.add_user()
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
    first, second = start_pair(cluster, OPENPAN_TRAFFIC_FLUSH_INTERVAL="0.5")
    creds = first.add_user()
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


def test_sigterm_lets_the_request_in_flight_finish(cluster: Cluster) -> None:
    cluster.env["OPENPAN_SYNC_COMPLETE_MAX"] = str(64 * MiB)  # no worker in this cluster
    server = cluster.add_api()
    server.start()
    client = server.client(server.add_user())
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
