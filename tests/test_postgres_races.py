"""Rules that must hold when requests race on different processes sharing one PostgreSQL:
unique names in a directory, the 3-live-token cap, the 3-unfinished copy-task limit, the
disk quota, and reference counting when the same bytes are uploaded and deleted at once.

Every race fires its requests from threads released together at a barrier, alternating
between two API processes.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pgdb
import pytest
import scaleout
from conftest import Api, Server
from scaleout import Cluster, blob_counts_agree, cluster_env, disk_upload, needs_postgres

MiB = 1024 * 1024
pytestmark = scaleout.ONCE


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` at the same moment, each in its own thread; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two API processes on one database and one blob directory, and no worker (so tasks
    stay unfinished). Shared by the races of this module; each race has users of its own."""
    needs_postgres()
    tmp = tmp_path_factory.mktemp("races")
    group = Cluster(tmp=tmp, env=cluster_env(OPENPAN_STORAGE_URL=f"file://{tmp / 'shared-blobs'}"))
    first, second = group.add_api(), group.add_api()
    first.start()
    second.start()
    yield first, second
    group.stop()


@pytest.fixture
def user_on_both(pair: tuple[Server, Server]) -> Iterator[tuple[Api, Api]]:
    """One user, logged in on each process."""
    creds = pair[0].take_user()
    clients = (pair[0].client(creds), pair[1].client(creds))
    yield clients
    for client in clients:
        client.close()


def query(server: Server, sql: str, *args: object) -> list[tuple[Any, ...]]:
    return pgdb.query(server.env["OPENPAN_DATABASE_URL"], sql, *args)


def test_one_name_per_directory_when_mkdirs_race(user_on_both: tuple[Api, Api]) -> None:
    oss = race(
        [
            lambda i=i: user_on_both[i % 2].post(
                "/upload/v1/oss/file/mkdir", {"name": "album", "parentID": "", "type": 1}
            )
            for i in range(12)
        ]
    )
    assert sum(answer["code"] == 0 for answer in oss) == 1, oss
    for answer in oss:
        assert answer["code"] in (0, 1), answer
        if answer["code"]:
            assert "name" in answer["message"] and "internal" not in answer["message"]
    disk = race(
        [
            lambda i=i: user_on_both[i % 2].post(
                "/upload/v1/file/mkdir", {"name": "docs", "parentID": 0}
            )
            for i in range(12)
        ]
    )
    assert sum(answer["code"] == 0 for answer in disk) == 1, disk
    assert all("internal" not in answer["message"] for answer in disk)
    listed = user_on_both[1].ok("GET", "/api/v2/file/list", {"parentFileId": 0, "limit": 100})
    assert [f["filename"] for f in listed["fileList"]] == ["docs"]
    oss_listed = user_on_both[0].ok("POST", "/api/v1/oss/file/list", {"limit": 100, "type": 1})
    assert [f["filename"] for f in oss_listed["fileList"]] == ["album"]


def test_at_most_three_live_tokens_when_logins_race(pair: tuple[Server, Server]) -> None:
    creds = pair[0].take_user()

    def login(server: Server) -> str:
        answer = httpx.post(
            server.url + "/api/v1/access_token",
            json={"clientID": creds["client_id"], "clientSecret": creds["client_secret"]},
            headers={"Platform": "open_platform"},
            timeout=60,
        ).json()
        assert answer["code"] == 0, answer
        token: str = answer["data"]["accessToken"]
        return token

    tokens = race([lambda i=i: login(pair[i % 2]) for i in range(10)])
    live = 0
    for number, token in enumerate(tokens):
        answer = httpx.get(
            pair[number % 2].url + "/api/v1/user/info",
            headers={"Authorization": f"Bearer {token}", "Platform": "open_platform"},
        ).json()
        assert answer["code"] in (0, 401), answer
        live += answer["code"] == 0
    assert live == 3


def test_at_most_three_unfinished_copy_tasks_when_requests_race(
    user_on_both: tuple[Api, Api],
) -> None:
    image = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(50_000)
    source = disk_upload(user_on_both[0], image, "pic.jpg")["fileID"]
    # No worker runs in this cluster: every accepted task stays unfinished.
    answers = race(
        [
            lambda i=i: user_on_both[i % 2].post(
                "/api/v1/oss/source/copy", {"fileIDs": [source], "toParentFileID": ""}
            )
            for i in range(8)
        ]
    )
    accepted = [a for a in answers if a["code"] == 0]
    assert len(accepted) == 3, answers
    assert all(a["code"] == 1 and a["message"] for a in answers if a["code"] != 0)


def test_the_quota_holds_when_instant_uploads_race(
    pair: tuple[Server, Server], user_on_both: tuple[Api, Api]
) -> None:
    data = os.urandom(100_000)
    disk_upload(user_on_both[0], data, "seed.bin")  # the bytes now exist: uploads are instant
    creds = pair[0].take_user()
    name = next(
        row[0]
        for row in query(pair[0], "SELECT name FROM users WHERE client_id = ?", creds["client_id"])
    )
    done = pair[0].cli("user", "set", str(name), "--quota", str(250_000))
    assert done.returncode == 0, done.stdout + done.stderr
    clients = [pair[0].client(creds), pair[1].client(creds)]
    try:
        etag = hashlib.md5(data).hexdigest()
        answers = race(
            [
                lambda i=i: clients[i % 2].post(
                    "/upload/v1/file/create",
                    {
                        "parentFileID": 0,
                        "filename": f"copy{i}.bin",
                        "etag": etag,
                        "size": len(data),
                    },
                )
                for i in range(8)
            ]
        )
        made = [a for a in answers if a["code"] == 0]
        assert len(made) == 2 and all(a["data"]["reuse"] for a in made), answers
        info = clients[1].ok("GET", "/api/v1/user/info")
        assert info["spaceUsed"] == 200_000
    finally:
        for client in clients:
            client.close()


def test_same_bytes_uploaded_at_once_make_one_blob(
    pair: tuple[Server, Server], user_on_both: tuple[Api, Api]
) -> None:
    data = os.urandom(3 * MiB)
    others = [pair[0].client(pair[0].take_user()) for _ in range(3)]
    try:
        uploaders = [user_on_both[0], user_on_both[1], *others]
        results = race(
            [
                lambda i=i, api=api: disk_upload(api, data, f"same{i}.bin")
                for i, api in enumerate(uploaders)
            ]
        )
        assert all(r["fileID"] for r in results)
        md5 = hashlib.md5(data).hexdigest()
        blobs = query(pair[0], "SELECT refcount FROM blobs WHERE md5 = ?", md5)
        assert blobs == [(len(uploaders),)]
        stored = list((pair[0].data_dir.parent.parent / "shared-blobs" / "blobs").rglob(f"{md5}*"))
        assert len(stored) == 1, stored
        blob_counts_agree(pair[0])
    finally:
        for client in others:
            client.close()


def test_deleting_the_last_copy_while_the_same_bytes_arrive_again(
    pair: tuple[Server, Server],
) -> None:
    owners = [pair[0].client(pair[0].take_user()), pair[1].client(pair[0].take_user())]
    try:
        for round_number in range(4):
            data = os.urandom(200_000)
            first = disk_upload(owners[0], data, f"r{round_number}.bin")["fileID"]
            owners[0].ok("POST", "/api/v1/file/trash", {"fileIDs": [first]})
            deleted, uploaded = race(
                [
                    lambda first=first: owners[0].post("/api/v1/file/delete", {"fileIDs": [first]}),
                    lambda data=data, n=round_number: disk_upload(owners[1], data, f"again{n}.bin"),
                ]
            )
            assert deleted["code"] == 0, deleted
            link = owners[1].ok("GET", "/api/v1/file/download_info", {"fileId": uploaded["fileID"]})
            body = owners[1].http.get(link["downloadUrl"])
            assert body.status_code == 200 and body.content == data
        blob_counts_agree(pair[0])
    finally:
        for client in owners:
            client.close()
