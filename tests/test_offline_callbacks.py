"""Callbacks at the end of an offline download: the body, the signature, retries, sent once."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator

import diskkit
import pytest
from conftest import Api, Server
from offline_kit import (
    DEFAULT_DIR,
    Origin,
    Receiver,
    failed,
    origin_at,
    png_bytes,
    submit,
    succeeded,
)


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with origin_at() as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver(failures=0)
    hook.start()
    yield hook
    hook.stop()


def _secret(server: Server, api: Api) -> str:
    done = server.cli("user", "callback-secret", api.creds["name"], "--json")
    assert done.returncode == 0, done.stderr
    secret: str = json.loads(done.stdout)["callback_secret"]
    return secret


def test_success_callback_is_signed_and_carries_the_file_id(
    offline_server: Server, offline_api: Api, origin: Origin, receiver: Receiver
) -> None:
    data = os.urandom(50_000)
    url = origin.file("/c1/data.bin", data)
    task_id = submit(offline_api, url, callBackUrl=receiver.hook)
    succeeded(offline_api, task_id)
    (seen,) = receiver.wait_for(1)
    assert seen.method == "POST" and seen.headers["content-type"] == "application/json"
    body = json.loads(seen.body)
    assert set(body) == {"url", "status", "failReason", "fileID"}
    assert body["url"] == url and body["status"] == 0 and body["failReason"] == ""
    folder = int(diskkit.names(offline_api)[DEFAULT_DIR]["fileId"])
    assert body["fileID"] == int(diskkit.names(offline_api, folder)["data.bin"]["fileId"])
    expected = hmac.new(_secret(offline_server, offline_api).encode(), seen.body, hashlib.sha256)
    assert seen.headers["x-openpan-signature"] == "sha256=" + expected.hexdigest()
    # Another user's key does not produce it.
    assert (
        "sha256=" + hmac.new(b"other", seen.body, hashlib.sha256).hexdigest()
        != (seen.headers["x-openpan-signature"])
    )


def test_failure_callbacks_say_why_in_each_space(
    offline_api: Api, origin: Origin, receiver: Receiver
) -> None:
    missing = origin.status("/c2/missing.png", 404)
    succeeded_id = submit(
        offline_api,
        origin.file("/c2/ok.png", png_bytes(3_000, b"c2")),
        oss=True,
        callBackUrl=receiver.hook,
    )
    failed(offline_api, submit(offline_api, missing, callBackUrl=receiver.hook))
    failed(offline_api, submit(offline_api, missing, oss=True, callBackUrl=receiver.hook), oss=True)
    succeeded(offline_api, succeeded_id, oss=True)
    bodies = [json.loads(s.body) for s in receiver.wait_for(3)]
    failures = [b for b in bodies if b["status"] == 1]
    assert len(failures) == 2
    assert {type(b["fileID"]) for b in failures} == {int, str}  # 0 (cloud disk), "" (image bed)
    assert all(b["fileID"] in (0, "") and "404" in b["failReason"] for b in failures)
    (ok,) = [b for b in bodies if b["status"] == 0]
    assert type(ok["fileID"]) is str and ok["fileID"]


def test_a_failing_receiver_is_retried_and_then_left_alone(
    offline_api: Api, origin: Origin
) -> None:
    flaky = Receiver(failures=2)
    flaky.start()
    try:
        task_id = submit(offline_api, origin.file("/c3/a.bin", b"abc"), callBackUrl=flaky.hook)
        succeeded(offline_api, task_id)
        seen = flaky.wait_for(3)
        assert len({s.body for s in seen}) == 1  # the same body, and the same signature, each time
        assert len({s.headers["x-openpan-signature"] for s in seen}) == 1
        time.sleep(1.5)
        assert len(flaky.requests("/hook")) == 3  # delivered once: never again
    finally:
        flaky.stop()

    down = Receiver(failures=100)
    down.start()
    try:
        task_id = submit(offline_api, origin.file("/c3/b.bin", b"abcd"), callBackUrl=down.hook)
        succeeded(offline_api, task_id)
        down.wait_for(4)  # the first try and OPENPAN_CALLBACK_RETRIES=3
        time.sleep(1.5)
        assert len(down.requests("/hook")) == 4
    finally:
        down.stop()
