"""Measurement 1: a 100 KB image through its direct link, 64 connections, openpan vs nginx
serving the same file statically. Target: openpan requests/s >= 0.5 x nginx.

    python bench/small_image.py [--seconds 8] [--rounds 3] [--openpan-arg=--workers=2]
"""

from __future__ import annotations

from common import deadline, machine, mib, table
from serving import arguments, env_pairs, measure_link

SIZE = 100 * 1024
TARGET = 0.5


def main() -> None:
    args = arguments(__doc__ or "", connections=64, seconds=8)
    deadline(120 + args.rounds * 2 * (args.seconds + 5))
    result = measure_link(
        SIZE,
        args.connections,
        args.seconds,
        args.rounds,
        args.openpan_arg,
        env_pairs(args.openpan_env),
    )
    ratio = result.rps("openpan") / result.rps("nginx")
    print(f"machine: {machine()}")
    print(
        table(
            [
                [
                    f"direct link, 100 KB image, {args.connections} connections (req/s)",
                    f"{result.rps('nginx'):,.0f}",
                    f"{result.rps('openpan'):,.0f}",
                    f"{ratio:.2f}",
                    f">= {TARGET}",
                    "yes" if ratio >= TARGET else "NO",
                ],
                [
                    "peak RSS while serving it",
                    mib(result.nginx_peak_rss),
                    mib(result.openpan_peak_rss),
                    "",
                    "",
                    "",
                ],
            ],
            ["measurement", "nginx", "openpan", "ratio", "target", "met"],
        )
    )
    print(
        "runs (req/s): nginx "
        + ", ".join(f"{r.requests_per_second:,.0f}" for r in result.nginx)
        + "; openpan "
        + ", ".join(f"{r.requests_per_second:,.0f}" for r in result.openpan)
    )


if __name__ == "__main__":
    main()
