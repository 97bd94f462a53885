"""Measurement 2: a 10 MB file through its direct link, openpan against nginx serving the same
file statically. Target: openpan MB/s >= 0.8 x nginx. Also reports peak memory, which must not
grow with the file's size (compare with measurement 1).

    python bench/large_file.py [--seconds 8] [--rounds 5] [--connections 16]
"""

from __future__ import annotations

import argparse

import serving
from common import MiB

MEASUREMENT = serving.Measurement(
    size=10 * 1000 * 1000,
    target=0.8,
    title="2. direct link, 10 MB file, {connections} connections: MiB/s",
    memory_title="4. peak RSS while serving the 10 MB file",
    runs_title="   (each run, MiB/s)",
    figure=lambda run: run.bytes_per_second / MiB,
)


def rows(args: argparse.Namespace) -> list[list[str]]:
    return serving.link_rows(args, MEASUREMENT)


if __name__ == "__main__":
    serving.main(__doc__ or "", MEASUREMENT, connections=16)
