"""Measurement 2: a 10 MB file through its direct link, openpan vs nginx serving the same file
statically. Target: openpan MB/s >= 0.8 x nginx.

    python bench/large_file.py [--seconds 8] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

from common import MiB, deadline, machine, mib, table
from serving import arguments, env_pairs, measure_link

SIZE = 10 * 1000 * 1000
TARGET = 0.8


def main() -> None:
    args = arguments(__doc__ or "", connections=16, seconds=8)
    deadline(120 + args.rounds * 2 * (args.seconds + 5))
    result = measure_link(
        SIZE,
        args.connections,
        args.seconds,
        args.rounds,
        args.openpan_arg,
        env_pairs(args.openpan_env),
    )
    ratio = result.bps("openpan") / result.bps("nginx")
    print(f"machine: {machine()}")
    print(
        table(
            [
                [
                    f"direct link, 10 MB file, {args.connections} connections (MiB/s)",
                    f"{result.bps('nginx') / MiB:,.0f}",
                    f"{result.bps('openpan') / MiB:,.0f}",
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
        "runs (MiB/s): nginx "
        + ", ".join(f"{r.bytes_per_second / MiB:,.0f}" for r in result.nginx)
        + "; openpan "
        + ", ".join(f"{r.bytes_per_second / MiB:,.0f}" for r in result.openpan)
    )


if __name__ == "__main__":
    main()
