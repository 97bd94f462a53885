"""Harness for scale-out tests: an S3-protocol server, PostgreSQL databases, worker processes.

The S3 server is moto's server mode over real HTTP (CI has no MinIO); it enforces S3's rules
that matter here (5 MiB minimum part, multipart semantics, presigned URLs). Each test asks for
a bucket of its own, so tests never see each other's objects.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pgdb
import pytest
from conftest import Api, Server, free_port, make_server

MiB = 1024 * 1024
S3_PART = 5 * MiB
# OPENPAN_TEST_S3_ENDPOINT runs the S3 tests against a real store (MinIO, Ceph RGW) instead of
# moto, with the credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
EXTERNAL_S3 = os.environ.get("OPENPAN_TEST_S3_ENDPOINT", "")
CREDENTIALS = (
    {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    if EXTERNAL_S3
    else {"AWS_ACCESS_KEY_ID": "openpan-test", "AWS_SECRET_ACCESS_KEY": "openpan-test"}
)


@dataclass
class S3Server:
    """An S3-protocol server: a moto subprocess, or the store named by OPENPAN_TEST_S3_ENDPOINT."""

    endpoint: str
    process: subprocess.Popen[bytes] | None

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def new_bucket(self) -> str:
        name = f"openpan-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``."""
        found: list[str] = []
        for page in (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            found += [o["Key"] for o in page.get("Contents", [])]
        return sorted(found)

    def multipart_uploads(self, bucket: str) -> list[str]:
        answer = self.client().list_multipart_uploads(Bucket=bucket)
        return [u["Key"] for u in answer.get("Uploads", [])]

    def storage_url(self, bucket: str, prefix: str = "blobs-root", **query: str) -> str:
        params = "&".join(f"{k}={v}" for k, v in {"endpoint": self.endpoint, **query}.items())
        return f"s3://{bucket}/{prefix}?{params}"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3-protocol server (moto unless OPENPAN_TEST_S3_ENDPOINT is set) for the whole run."""
    if EXTERNAL_S3:
        yield S3Server(endpoint=EXTERNAL_S3.rstrip("/"), process=None)
        return
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **CREDENTIALS},
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(endpoint + "/moto-api/", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    yield S3Server(endpoint=endpoint, process=process)
    process.terminate()
    process.wait(10)


def s3_env(s3: S3Server, bucket: str, **extra: str) -> dict[str, str]:
    """Server settings for blobs in ``bucket`` (S3 needs slices of at least 5 MiB)."""
    return {
        **CREDENTIALS,
        "OPENPAN_STORAGE_URL": s3.storage_url(bucket),
        "OPENPAN_SLICE_SIZE": str(S3_PART),
        "OPENPAN_SYNC_COMPLETE_MAX": str(2 * S3_PART),
        **extra,
    }


# Scale-out tests always run on PostgreSQL: the PostgreSQL tier of the suite need not repeat them.
ONCE = pytest.mark.skipif(pgdb.postgres_tier(), reason="on PostgreSQL in the default run already")


def needs_postgres() -> None:
    if not pgdb.available():
        pytest.skip(f"PostgreSQL is not reachable at {pgdb.ADMIN_URL}")


@dataclass
class Worker:
    """A running ``openpan worker`` subprocess."""

    data_dir: Path
    env: dict[str, str]
    name: str = "worker"
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.name}.log"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "openpan", "worker", "--data-dir", str(self.data_dir)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_for_log("worker started")

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {text!r} in its log: {self.log()[-3000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Signal the worker and wait for it; returns its exit code."""
        if self.process is None or self.process.poll() is not None:
            return None
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)


@dataclass
class Cluster:
    """API processes and workers sharing one PostgreSQL database, one broker and one store."""

    tmp: Path
    env: dict[str, str]
    apis: list[Server] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    def add_api(self) -> Server:
        api = make_server(self.tmp / f"api{len(self.apis) + 1}", **self.env)
        self.apis.append(api)
        return api

    def add_worker(self) -> Worker:
        name = f"worker{len(self.workers) + 1}"
        worker = Worker(data_dir=self.tmp / name / "data", env=self.apis[0].env, name=name)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for api in self.apis:
            api.stop()


def cluster_env(
    s3: S3Server | None = None, bucket: str | None = None, **extra: str
) -> dict[str, str]:
    """Settings shared by every process of a scale-out cluster on a new database."""
    database = pgdb.create_database("openpan_so")
    env = {
        "OPENPAN_DATABASE_URL": database,
        "OPENPAN_QUEUE_URL": database,
        "OPENPAN_WORKER_HEARTBEAT": "1",
        "OPENPAN_WORKER_STALLED_AFTER": "4",
        "OPENPAN_JOB_GRACE": "2",
        **extra,
    }
    if s3 is not None and bucket is not None:
        env = {**s3_env(s3, bucket), **env}
    return env


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """An empty scale-out cluster on a fresh PostgreSQL database (local blob directory)."""
    needs_postgres()
    blobs = tmp_path / "shared-blobs"
    group = Cluster(tmp=tmp_path, env=cluster_env(OPENPAN_STORAGE_URL=f"file://{blobs}"))
    yield group
    group.stop()


@dataclass
class Origin:
    """A file server for offline downloads, and a receiver for their callbacks.

    ``files`` maps a name to its bytes, served at ``url(name)``. Names in ``gated`` are sent
    half, then held until ``gate`` is set (so a test can act while a download is mid-way);
    ``halves_sent`` counts those half-sent answers. ``callbacks`` records every callback body.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    gated: set[str] = field(default_factory=set)
    gate: threading.Event = field(default_factory=threading.Event)
    halves_sent: int = 0
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/files/{name}"

    @property
    def callback_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"


@pytest.fixture
def origin_server() -> Iterator[Origin]:
    """An ``Origin`` on a free port, with no files yet."""
    state = Origin()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            data = state.files.get(name)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                if name not in state.gated:
                    self.wfile.write(data)
                    return
                half = len(data) // 2
                self.wfile.write(data[:half])
                self.wfile.flush()
                state.halves_sent += 1
                state.gate.wait(60)
                self.wfile.write(data[half:])
            except OSError:
                pass  # the downloader went away (killed)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.callbacks.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    state.gate.set()
    httpd.shutdown()
    httpd.server_close()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` until it is true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def disk_upload(api: Api, data: bytes, name: str, parent: int = 0) -> dict[str, Any]:
    """The cloud-disk V1 flow; the answer of create (``reuse``) with the final ``fileID``."""
    etag = hashlib.md5(data).hexdigest()
    body = {"parentFileID": parent, "filename": name, "etag": etag, "size": len(data)}
    created: dict[str, Any] = api.ok("POST", "/upload/v1/file/create", body)
    if created["reuse"]:
        return created
    pre, size = created["preuploadID"], created["sliceSize"]
    for number in range(1, max(1, -(-len(data) // size)) + 1):
        url = api.ok(
            "POST", "/upload/v1/file/get_upload_url", {"preuploadID": pre, "sliceNo": number}
        )
        chunk = data[(number - 1) * size : number * size]
        assert httpx.put(url["presignedURL"], content=chunk, timeout=60).status_code == 200
    done = api.ok("POST", "/upload/v1/file/upload_complete", {"preuploadID": pre})
    if not done["completed"]:
        done["fileID"] = api.wait_async(pre, "/upload/v1/file/upload_async_result")
    created["fileID"] = int(done["fileID"])
    return created


def blob_counts_agree(server: Server) -> None:
    """Every blob's reference count equals the number of file rows using it."""
    rows = pgdb.query(
        server.env["OPENPAN_DATABASE_URL"],
        "SELECT b.id, b.refcount, COUNT(f.id) FROM blobs b "
        "LEFT JOIN files f ON f.blob_id = b.id GROUP BY b.id, b.refcount",
    )
    assert all(refcount == used for _, refcount, used in rows), rows
    orphans = pgdb.query(
        server.env["OPENPAN_DATABASE_URL"],
        "SELECT COUNT(*) FROM files "
        "WHERE blob_id IS NOT NULL AND blob_id NOT IN (SELECT id FROM blobs)",
    )
    assert orphans == [(0,)]
