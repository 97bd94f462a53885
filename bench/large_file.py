"""Measurement 2: a 10 MB file through its direct link, openpan against nginx serving the same
file statically. Target: openpan MB/s >= 0.8 x nginx. Also reports peak memory, which must not
grow with the file's size (compare with measurement 1).

    python bench/large_file.py [--seconds 8] [--rounds 5] [--connections 16]
"""

from __future__ import annotations

import argparse

from common import HEADER, MiB, deadline, machine, mib, table
from serving import arguments, env_pairs, measure_link

SIZE = 10 * 1000 * 1000
TARGET = 0.8


def rows(args: argparse.Namespace) -> list[list[str]]:
    result = measure_link(
        SIZE,
        args.connections,
        args.seconds,
        args.rounds,
        args.openpan_arg,
        env_pairs(args.openpan_env),
    )
    nginx, openpan = result.bps("nginx"), result.bps("openpan")
    ratio = openpan / nginx
    return [
        [
            f"2. direct link, 10 MB file, {args.connections} connections: MiB/s",
            f"{nginx / MiB:,.0f}",
            f"{openpan / MiB:,.0f}",
            f"{ratio:.2f}",
            f">= {TARGET}",
            "yes" if ratio >= TARGET else "NO",
        ],
        [
            "4. peak RSS while serving the 10 MB file",
            mib(result.nginx_peak_rss),
            mib(result.openpan_peak_rss),
            "",
            "",
            "",
        ],
        [
            "   (each run, MiB/s)",
            " ".join(f"{r.bytes_per_second / MiB:,.0f}" for r in result.nginx),
            " ".join(f"{r.bytes_per_second / MiB:,.0f}" for r in result.openpan),
            "",
            "",
            "",
        ],
    ]


def main() -> None:
    args = arguments(__doc__ or "", connections=16, seconds=8)
    deadline(120 + args.rounds * 2 * (args.seconds + 5))
    print(f"machine: {machine()}")
    print(table(rows(args), HEADER))


if __name__ == "__main__":
    main()
