"""Measurement 3: upload 1 GiB through openpan's whole API flow (cloud disk V1, as the image
bed stops at 100 MB: create, get_upload_url, PUT slices in parallel, complete,
upload_async_result until done, md5 verified by the server)
against the same bytes PUT to nginx's WebDAV module. Target: openpan >= 1.0 x nginx.
Also reports the servers' peak memory while receiving (measurement 4).

Dirty pages are written out (sync) before every run, so neither side inherits the other's
disk backlog.

    python bench/upload.py [--size-mib 1024] [--rounds 2] [--parallel 4]
"""

from __future__ import annotations

import argparse
import os
import time

from common import (
    MiB,
    Nginx,
    Openpan,
    PeakMemory,
    alternate,
    cpu_seconds,
    deadline,
    ensure_tools,
    machine,
    median,
    mib,
    put_file,
    random_file,
    table,
    workdir,
)

TARGET = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved runs per side")
    parser.add_argument("--parallel", type=int, default=4, help="slices in flight at once")
    parser.add_argument("--openpan-arg", action="append", default=[])
    parser.add_argument("--openpan-env", action="append", default=[], help="KEY=VALUE")
    args = parser.parse_args()
    deadline(300 + args.rounds * 2 * 120)
    ensure_tools()
    size = args.size_mib * MiB
    with workdir() as root:
        source = random_file(root / "upload.bin", size)
        nginx = Nginx(root / "nginx")
        openpan = Openpan(
            root / "openpan",
            env=dict(pair.split("=", 1) for pair in args.openpan_env),
            args=args.openpan_arg,
        )
        try:
            nginx.start()
            openpan.start()
            assert nginx.process is not None and openpan.process is not None
            counter = iter(range(1_000_000))

            cpu = {"nginx": 0.0, "openpan": 0.0}

            def run_nginx() -> float:
                nginx.clear_dav()
                os.sync()
                assert nginx.process is not None
                cpu_before = cpu_seconds(nginx.process.pid)
                started = time.perf_counter()
                status = put_file(f"{nginx.url}/dav/upload-{next(counter)}.bin", source, 0, size)
                elapsed = time.perf_counter() - started
                cpu["nginx"] += cpu_seconds(nginx.process.pid) - cpu_before
                assert status in (201, 204), status
                return size / elapsed

            uploaded: list[str] = []

            def run_openpan() -> float:
                for file_id in uploaded:
                    # Or the next upload would be instant (same bytes).
                    openpan.delete(file_id, space="disk")
                uploaded.clear()
                os.sync()
                assert openpan.process is not None
                cpu_before = cpu_seconds(openpan.process.pid)
                file_id, elapsed = openpan.upload(
                    source, f"upload-{next(counter)}.bin", parallel=args.parallel, space="disk"
                )
                cpu["openpan"] += cpu_seconds(openpan.process.pid) - cpu_before
                uploaded.append(file_id)
                return size / elapsed

            with PeakMemory(openpan.process.pid) as openpan_memory, PeakMemory(
                nginx.process.pid
            ) as nginx_memory:
                speeds = alternate(args.rounds, {"nginx": run_nginx, "openpan": run_openpan})
        finally:
            openpan.stop()
            nginx.stop()
    nginx_speed, openpan_speed = median(speeds["nginx"]), median(speeds["openpan"])
    ratio = openpan_speed / nginx_speed
    print(f"machine: {machine()}")
    print(
        table(
            [
                [
                    f"upload {args.size_mib} MiB, {args.parallel} slices at once (MiB/s)",
                    f"{nginx_speed / MiB:,.0f}",
                    f"{openpan_speed / MiB:,.0f}",
                    f"{ratio:.2f}",
                    f">= {TARGET}",
                    "yes" if ratio >= TARGET else "NO",
                ],
                [
                    "server CPU time per upload (s)",
                    f"{cpu['nginx'] / args.rounds:.2f}",
                    f"{cpu['openpan'] / args.rounds:.2f}",
                    "",
                    "",
                    "",
                ],
                [
                    "peak RSS while receiving it",
                    mib(nginx_memory.peak),
                    mib(openpan_memory.peak),
                    "",
                    "",
                    "",
                ],
            ],
            ["measurement", "nginx", "openpan", "ratio", "target", "met"],
        )
    )
    print(
        "runs (s): nginx "
        + ", ".join(f"{size / s:.2f}" for s in speeds["nginx"])
        + "; openpan "
        + ", ".join(f"{size / s:.2f}" for s in speeds["openpan"])
    )


if __name__ == "__main__":
    main()
