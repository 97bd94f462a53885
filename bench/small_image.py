"""Measurement 1: a 100 KB image through its direct link, 64 connections, openpan against nginx
serving the same file statically. Target: openpan requests/s >= 0.5 x nginx. Also reports the
servers' peak memory while serving it (measurement 4).

    python bench/small_image.py [--seconds 8] [--rounds 5] [--connections 64]
"""

from __future__ import annotations

import argparse

from common import HEADER, deadline, machine, mib, table
from serving import arguments, env_pairs, measure_link

SIZE = 100 * 1024
TARGET = 0.5


def rows(args: argparse.Namespace) -> list[list[str]]:
    result = measure_link(
        SIZE,
        args.connections,
        args.seconds,
        args.rounds,
        args.openpan_arg,
        env_pairs(args.openpan_env),
    )
    nginx, openpan = result.rps("nginx"), result.rps("openpan")
    ratio = openpan / nginx
    return [
        [
            f"1. direct link, 100 KB image, {args.connections} connections: requests/s",
            f"{nginx:,.0f}",
            f"{openpan:,.0f}",
            f"{ratio:.2f}",
            f">= {TARGET}",
            "yes" if ratio >= TARGET else "NO",
        ],
        [
            "4. peak RSS while serving the 100 KB image",
            mib(result.nginx_peak_rss),
            mib(result.openpan_peak_rss),
            "",
            "",
            "",
        ],
        [
            "   (each run, req/s)",
            " ".join(f"{r.requests_per_second:,.0f}" for r in result.nginx),
            " ".join(f"{r.requests_per_second:,.0f}" for r in result.openpan),
            "",
            "",
            "",
        ],
    ]


def main() -> None:
    args = arguments(__doc__ or "", connections=64, seconds=8)
    deadline(120 + args.rounds * 2 * (args.seconds + 5))
    print(f"machine: {machine()}")
    print(table(rows(args), HEADER))


if __name__ == "__main__":
    main()
