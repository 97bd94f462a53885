"""The embedded database while another process holds SQLite's write lock (a CLI command, a
backup tool): the server keeps answering, and a write waits for the lock instead of failing."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from typing import Any

import httpx
import pgdb
import pytest
from conftest import Api, Server
from diskkit import MKDIR

pytestmark = pytest.mark.skipif(pgdb.postgres_tier(), reason="SQLite's own locking")


def test_a_foreign_writer_delays_writes_but_not_the_server(fresh_server: Server) -> None:
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())
    try:
        _write_while_locked(fresh_server, api)
    finally:
        api.close()


def _write_while_locked(fresh_server: Server, api: Api) -> None:
    api.fetch_token()
    answer: dict[str, Any] = {}

    def make_dir() -> None:
        answer.update(api.call("POST", MKDIR, json={"name": "while-locked", "parentID": 0}))

    with closing(sqlite3.connect(fresh_server.data_dir / "openpan.db", timeout=30)) as foreign:
        foreign.isolation_level = None
        foreign.execute("BEGIN IMMEDIATE")
        writer = threading.Thread(target=make_dir)
        writer.start()
        time.sleep(0.5)
        # The write waits for the lock, not the event loop: reads and health checks still answer.
        assert writer.is_alive()
        assert httpx.get(f"{fresh_server.url}/healthz", timeout=5).status_code == 200
        listed = api.call("GET", "/api/v2/file/list", params={"parentFileId": 0, "limit": 100})
        assert listed["code"] == 0, listed
        foreign.execute("ROLLBACK")
    writer.join(timeout=30)
    assert answer.get("code") == 0, answer
    listed = api.call("GET", "/api/v2/file/list", params={"parentFileId": 0, "limit": 100})
    assert "while-locked" in [entry["filename"] for entry in listed["data"]["fileList"]]
