"""OPENPAN_OFFLINE_TIMEOUT (2 s on the offline test server) bounds each wait for the origin, not
a whole download: a slow but steady origin is read to its end, a stalled one is given up on and
tried again."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import diskkit
import pytest
from conftest import Api
from offline_kit import DEFAULT_DIR, Handler, Origin, failed, md5, origin_at, submit, succeeded


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with origin_at() as running:
        yield running


def _stored_md5(api: Api, name: str) -> str:
    folder = int(diskkit.names(api)[DEFAULT_DIR]["fileId"])
    return str(diskkit.names(api, folder)[name]["etag"])


def test_a_slow_steady_origin_is_not_cut_off(offline_api: Api, origin: Origin) -> None:
    data = os.urandom(1_200_000)
    url = origin.file("/t1/steady.bin", data, rate=300_000)  # 4 s in all, never a 2 s pause
    started = time.monotonic()
    succeeded(offline_api, submit(offline_api, url))
    assert time.monotonic() - started > 3
    assert len(origin.requests("/t1/steady.bin")) == 1
    assert _stored_md5(offline_api, "steady.bin") == md5(data)


def test_a_stalled_origin_times_out_and_is_tried_again(offline_api: Api, origin: Origin) -> None:
    data = os.urandom(500_000)
    calls = {"n": 0}

    def stall_once(h: Handler) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            h.send_file(data)
            return
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data[:1000])
        h.wfile.flush()
        time.sleep(5)  # silent for longer than the timeout
        h.close_connection = True

    succeeded(offline_api, submit(offline_api, origin.route("/t2/stall.bin", stall_once)))
    assert calls["n"] == 2
    assert _stored_md5(offline_api, "stall.bin") == md5(data)


def test_an_origin_that_never_answers_fails_with_a_timeout(
    offline_api: Api, origin: Origin
) -> None:
    def silent(h: Handler) -> None:
        time.sleep(3)  # no status line within the timeout
        h.close_connection = True

    task_id = submit(offline_api, origin.route("/t3/silent", silent))
    state = failed(offline_api, task_id)
    assert "timed out" in state["failReason"], state
    assert len(origin.requests("/t3/silent")) == 4  # the first try and OPENPAN_OFFLINE_RETRIES=3
