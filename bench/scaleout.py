"""Scale-out mode measured: API processes and a worker on PostgreSQL, blobs in an S3 server
(moto's server mode: MinIO is not installable here; a real store is faster than this
pure-Python one, so the object-store rows are a floor), jobs on procrastinate.

1. Upload: a file through the whole API flow (create, presigned part URLs, parallel PUTs
   straight to the store, complete, async verification by the worker) vs the same bytes sent
   to the store directly as one multipart upload with the same parallelism.
2. Direct link, 100 KB image: proxied by one API process, by two (load split between them),
   redirected to a presigned GET (302s answered per second), and the store's own GET.
3. API throughput (``/api/v1/oss/file/detail`` with a token): one API process vs two.

    python bench/scaleout.py [--upload-mib 256] [--seconds 8] [--connections 64]

Needs PostgreSQL on 127.0.0.1:5432 (trust auth; database ``test`` to create scratch databases
from), wrk, and the test extras (moto). Everything listens on 127.0.0.1; every step has a
deadline.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg
from common import (
    HOST,
    MiB,
    Openpan,
    deadline,
    ensure_tools,
    free_port,
    machine,
    md5_file,
    random_file,
    stop_process,
    table,
    wait_http,
    workdir,
)

PG_ADMIN = os.environ.get("OPENPAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
PART = 16 * MiB


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, name: str, *args: str, extra: dict[str, str] | None = None) -> None:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        log = open(folder / "log", "ab")  # noqa: SIM115 - the child keeps it open
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "openpan", *args, "--data-dir", str(folder / "data")],
                env={**os.environ, **self.env, **(extra or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()

    def api(self, name: str, port: int, **extra: str) -> str:
        self.spawn(name, "serve", "--port", str(port), "--log-level", "warning", extra=extra)
        url = f"http://{HOST}:{port}"
        wait_http(url + "/healthz", 60)
        return url

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)


def wrk(url: str, connections: int, seconds: int, token: str = "", threads: int = 2) -> float:
    """Requests per second of ``url`` under wrk (bounded)."""
    headers = ["-H", f"Authorization: Bearer {token}", "-H", "Platform: open_platform"]
    done = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
        + (headers if token else [])
        + [url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if errors and int(errors.group(1)):
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses")
    return float(found.group(1)) if found else 0.0


def wrk_split(urls: list[str], connections: int, seconds: int, token: str = "") -> float:
    """Total requests per second with the connections (and wrk's two threads) split over
    ``urls`` at once."""
    each = max(1, connections // len(urls))
    with ThreadPoolExecutor(len(urls)) as pool:
        return sum(pool.map(lambda u: wrk(u, each, seconds, token, threads=1), urls))


def direct_multipart(s3: Any, bucket: str, path: Path, parallel: int) -> float:
    """Seconds to send ``path`` to the store as one multipart upload, parts in parallel."""
    size = path.stat().st_size
    key = f"direct/{uuid.uuid4().hex}"
    started = time.perf_counter()
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    def send(number: int) -> dict[str, Any]:
        with open(path, "rb") as handle:
            handle.seek((number - 1) * PART)
            body = handle.read(PART)
        answer = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    with ThreadPoolExecutor(parallel) as pool:
        parts = list(pool.map(send, range(1, -(-size // PART) + 1)))
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    seconds = time.perf_counter() - started
    s3.delete_object(Bucket=bucket, Key=key)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--upload-mib", type=int, default=256)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    deadline(600 + args.upload_mib)
    ensure_tools()
    database = f"bench_scaleout_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')  # type: ignore[arg-type]
    db_url = f"{PG_ADMIN.rpartition('/')[0]}/{database}"
    moto_port = free_port()
    endpoint = f"http://{HOST}:{moto_port}"
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(moto_port)],
        env={**os.environ, **CREDENTIALS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cluster: Cluster | None = None
    first: Openpan | None = None
    try:
        wait_http(endpoint + "/moto-api/", 30)
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket="bench")
        with workdir() as root:
            env = {
                **CREDENTIALS,
                "OPENPAN_DATABASE_URL": db_url,
                "OPENPAN_QUEUE_URL": db_url,
                "OPENPAN_STORAGE_URL": f"s3://bench/openpan?endpoint={endpoint}",
                "OPENPAN_SLICE_SIZE": str(PART),
                "OPENPAN_SYNC_COMPLETE_MAX": str(PART),
                "OPENPAN_RATE_LIMIT": "false",
                "OPENPAN_HOST": HOST,
            }
            first = Openpan(root / "api1", env=env)
            first.start()
            cluster = Cluster(root, env)
            cluster.spawn("worker", "worker")
            second = cluster.api("api2", free_port())
            redirect = cluster.api("api3", free_port(), OPENPAN_OBJECT_SERVING="redirect")
            rows: list[list[str]] = []

            # 1. Upload.
            big = random_file(root / "big.bin", args.upload_mib * MiB)
            md5_file(big)  # warm the page cache for both sides alike
            direct = direct_multipart(s3, "bench", big, 4)
            file_id, through = first.upload(big, "big.bin", parallel=4, space="disk")
            rate = args.upload_mib / through
            rows.append(
                [
                    f"upload {args.upload_mib} MiB to the cloud disk, 4 parts at once (MiB/s)",
                    f"{args.upload_mib / direct:.0f} (straight to the store)",
                    f"{rate:.0f}",
                    f"{rate / (args.upload_mib / direct):.2f}",
                ]
            )
            first.delete(file_id, space="disk")

            # 2. Direct link of a small image.
            small = random_file(root / "small.jpg", 100 * 1000)
            image_id, _ = first.upload(small, "small.jpg")
            link = first.link(image_id)
            path = link.split("/", 3)[3]
            store_url = s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": "bench", "Key": next(iter(_keys(s3, "openpan/blobs/")))},
                ExpiresIn=600,
            )
            c, s = args.connections, args.seconds
            store = wrk(store_url, c, s)
            one = wrk(f"{first.url}/{path}", c, s)
            two = wrk_split([f"{first.url}/{path}", f"{second}/{path}"], c, s)
            hops = wrk(f"{redirect}/{path}", c, s)
            rows += [
                ["100 KB image, store's own GET (req/s)", f"{store:,.0f}", "", ""],
                ["100 KB image, proxied: 1 API process (req/s)", f"{one:,.0f}", "", ""],
                ["100 KB image, proxied: 2 API processes (req/s)", f"{two:,.0f}", "", ""],
                ["100 KB image, 302 to presigned GET (redirects/s)", f"{hops:,.0f}", "", ""],
            ]

            # 3. API throughput.
            api_path = f"/api/v1/oss/file/detail?fileID={image_id}"
            api_one = wrk(first.url + api_path, c, s, first.token)
            api_two = wrk_split([first.url + api_path, second + api_path], c, s, first.token)
            rows += [
                ["API detail call: 1 API process (req/s)", f"{api_one:,.0f}", "", ""],
                [
                    "API detail call: 2 API processes (req/s)",
                    f"{api_two:,.0f}",
                    "",
                    f"{api_two / api_one:.2f} x one process",
                ],
            ]
            print(f"machine: {machine()}")
            print(
                "PostgreSQL, moto S3 server, 1 worker and up to 3 API processes on the same "
                f"machine; {c} connections, {s} s per run"
            )
            print(table(rows, ["scale-out mode", "reference / figure", "openpan", "ratio"]))
    finally:
        if first is not None:
            first.stop()
        if cluster is not None:
            cluster.stop()
        stop_process(moto)
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')  # type: ignore[arg-type]


def _keys(s3: Any, prefix: str) -> list[str]:
    answer = s3.list_objects_v2(Bucket="bench", Prefix=prefix)
    return [o["Key"] for o in answer.get("Contents", [])]


if __name__ == "__main__":
    main()
