"""Measurement 3: upload 1 GiB through openpan's whole API flow (the cloud disk's V1 flow, as
the image bed stops at 100 MB per image: create, get_upload_url, PUT slices in parallel,
upload_complete, upload_async_result until done; openpan checks the md5 of the whole file and
makes it durable before it is listed) against the same bytes PUT to nginx's WebDAV module.
Target: openpan >= 1.0 x nginx. Also reports the servers' CPU time and peak memory while
receiving (measurement 4).

Dirty pages are written out (sync) before every run, so neither side inherits the other's
disk backlog; the first run of each side is a warm-up and not counted.

    python bench/upload.py [--size-mib 1024] [--rounds 3] [--parallel 4]
"""

from __future__ import annotations

import argparse
import os
import time

from common import (
    HEADER,
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


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per side")
    parser.add_argument("--parallel", type=int, default=4, help="slices in flight at once")
    parser.add_argument("--openpan-arg", action="append", default=[])
    parser.add_argument("--openpan-env", action="append", default=[], help="KEY=VALUE")
    return parser.parse_args()


def rows(args: argparse.Namespace) -> list[list[str]]:
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
            nginx_pid, openpan_pid = nginx.process.pid, openpan.process.pid
            counter = iter(range(1_000_000))
            cpu = {"nginx": 0.0, "openpan": 0.0}
            uploaded: list[str] = []

            def run_nginx() -> float:
                nginx.clear_dav()
                os.sync()
                before = cpu_seconds(nginx_pid)
                started = time.perf_counter()
                status = put_file(f"{nginx.url}/dav/upload-{next(counter)}.bin", source, 0, size)
                elapsed = time.perf_counter() - started
                cpu["nginx"] += cpu_seconds(nginx_pid) - before
                assert status in (201, 204), status
                return elapsed

            def run_openpan() -> float:
                for file_id in uploaded:
                    # Or the next upload would be instant (the same bytes are stored).
                    openpan.delete(file_id, space="disk")
                uploaded.clear()
                os.sync()
                before = cpu_seconds(openpan_pid)
                file_id, elapsed = openpan.upload(
                    source, f"upload-{next(counter)}.bin", parallel=args.parallel, space="disk"
                )
                cpu["openpan"] += cpu_seconds(openpan_pid) - before
                uploaded.append(file_id)
                return elapsed

            alternate(1, {"nginx": run_nginx, "openpan": run_openpan})  # warm-up
            cpu = {"nginx": 0.0, "openpan": 0.0}
            with PeakMemory(openpan_pid) as openpan_memory, PeakMemory(nginx_pid) as nginx_memory:
                seconds = alternate(args.rounds, {"nginx": run_nginx, "openpan": run_openpan})
        finally:
            openpan.stop()
            nginx.stop()
    nginx_speed = size / median(seconds["nginx"])
    openpan_speed = size / median(seconds["openpan"])
    ratio = openpan_speed / nginx_speed
    return [
        [
            f"3. upload {args.size_mib} MiB, {args.parallel} slices at once: MiB/s",
            f"{nginx_speed / MiB:,.0f}",
            f"{openpan_speed / MiB:,.0f}",
            f"{ratio:.2f}",
            f">= {TARGET}",
            "yes" if ratio >= TARGET else "NO",
        ],
        [
            "   server CPU seconds per upload",
            f"{cpu['nginx'] / args.rounds:.2f}",
            f"{cpu['openpan'] / args.rounds:.2f}",
            "",
            "",
            "",
        ],
        [
            "4. peak RSS while receiving the upload",
            mib(nginx_memory.peak),
            mib(openpan_memory.peak),
            "",
            "",
            "",
        ],
        [
            "   (each run, seconds)",
            " ".join(f"{s:.2f}" for s in seconds["nginx"]),
            " ".join(f"{s:.2f}" for s in seconds["openpan"]),
            "",
            "",
            "",
        ],
    ]


def main() -> None:
    args = arguments()
    deadline(300 + (args.rounds + 1) * 2 * 120)
    print(f"machine: {machine()}")
    print(table(rows(args), HEADER))


if __name__ == "__main__":
    main()
