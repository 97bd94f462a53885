"""Measurement 1: a 100 KB image through its direct link, 64 connections, openpan against nginx
serving the same file statically. Target: openpan requests/s >= 0.5 x nginx. Also reports the
servers' peak memory while serving it (measurement 4).

    python bench/small_image.py [--seconds 8] [--rounds 5] [--connections 64]
"""

from __future__ import annotations

import argparse

import serving

MEASUREMENT = serving.Measurement(
    size=100 * 1024,
    target=0.5,
    title="1. direct link, 100 KB image, {connections} connections: requests/s",
    memory_title="4. peak RSS while serving the 100 KB image",
    runs_title="   (each run, req/s)",
    figure=lambda run: run.requests_per_second,
)


def rows(args: argparse.Namespace) -> list[list[str]]:
    return serving.link_rows(args, MEASUREMENT)


if __name__ == "__main__":
    serving.main(__doc__ or "", MEASUREMENT, connections=64)
