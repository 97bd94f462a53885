"""Direct-link serving, openpan against nginx on the same bytes: the shared part of
``small_image.py`` (measurement 1) and ``large_file.py`` (measurement 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from common import (
    HEADER,
    Nginx,
    Openpan,
    PeakMemory,
    WrkResult,
    alternate,
    deadline,
    ensure_tools,
    machine,
    median,
    mib,
    random_file,
    table,
    workdir,
    wrk,
)


@dataclass
class LinkResult:
    size: int
    connections: int
    nginx: list[WrkResult]
    openpan: list[WrkResult]
    openpan_peak_rss: int
    openpan_peak_rss_single: int
    nginx_peak_rss: int


def arguments(description: str, connections: int, seconds: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--connections", type=int, default=connections)
    parser.add_argument("--seconds", type=int, default=seconds, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs per side")
    parser.add_argument(
        "--openpan-arg", action="append", default=[], help="extra argument to openpan serve"
    )
    parser.add_argument(
        "--openpan-env", action="append", default=[], help="KEY=VALUE for openpan serve"
    )
    return parser.parse_args()


def measure_link(
    size: int,
    connections: int,
    seconds: int,
    rounds: int,
    openpan_args: list[str] | None = None,
    openpan_env: dict[str, str] | None = None,
) -> LinkResult:
    """Serve one file of ``size`` bytes from both servers and load each with wrk."""
    ensure_tools()
    with workdir() as root:
        source = random_file(root / "file.jpg", size)
        nginx = Nginx(root / "nginx")
        openpan = Openpan(root / "openpan", env=openpan_env or {}, args=openpan_args or [])
        try:
            nginx.start()
            openpan.start()
            nginx_url = nginx.publish("file.jpg", source)
            file_id, _ = openpan.upload(source, "file.jpg")
            openpan_url = openpan.link(file_id)
            expected = source.read_bytes()
            for url in (nginx_url, openpan_url):
                response = httpx.get(url, timeout=60)
                assert response.status_code == 200 and response.content == expected, url
                wrk(url, connections, 1)  # warm-up: caches, page cache, connections
            assert openpan.process is not None and nginx.process is not None
            nginx_results: list[WrkResult] = []
            openpan_results: list[WrkResult] = []
            with (
                PeakMemory(openpan.process.pid) as openpan_memory,
                PeakMemory(nginx.process.pid) as nginx_memory,
            ):

                def run_nginx() -> float:
                    nginx_results.append(wrk(nginx_url, connections, seconds))
                    return nginx_results[-1].requests_per_second

                def run_openpan() -> float:
                    openpan_results.append(wrk(openpan_url, connections, seconds))
                    return openpan_results[-1].requests_per_second

                alternate(rounds, {"nginx": run_nginx, "openpan": run_openpan})
            return LinkResult(
                size=size,
                connections=connections,
                nginx=nginx_results,
                openpan=openpan_results,
                openpan_peak_rss=openpan_memory.peak,
                openpan_peak_rss_single=openpan_memory.peak_single,
                nginx_peak_rss=nginx_memory.peak,
            )
        finally:
            openpan.stop()
            nginx.stop()


def env_pairs(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


@dataclass
class Measurement:
    """What a serving script measures and how it shows it."""

    size: int  # of the file served
    target: float  # openpan / nginx at least
    title: str  # the first row's label; ``{connections}`` is filled in
    memory_title: str
    runs_title: str
    figure: Callable[[WrkResult], float]  # one run's figure, in the unit shown


def link_rows(args: argparse.Namespace, measured: Measurement) -> list[list[str]]:
    """Run the measurement with the script's arguments; the rows of its table."""
    result = measure_link(
        measured.size,
        args.connections,
        args.seconds,
        args.rounds,
        args.openpan_arg,
        env_pairs(args.openpan_env),
    )
    nginx = median([measured.figure(r) for r in result.nginx])
    openpan = median([measured.figure(r) for r in result.openpan])
    ratio = openpan / nginx
    return [
        [
            measured.title.format(connections=args.connections),
            f"{nginx:,.0f}",
            f"{openpan:,.0f}",
            f"{ratio:.2f}",
            f">= {measured.target}",
            "yes" if ratio >= measured.target else "NO",
        ],
        [
            measured.memory_title,
            mib(result.nginx_peak_rss),
            mib(result.openpan_peak_rss),
            "",
            "",
            "",
        ],
        [
            measured.runs_title,
            " ".join(f"{measured.figure(r):,.0f}" for r in result.nginx),
            " ".join(f"{measured.figure(r):,.0f}" for r in result.openpan),
            "",
            "",
            "",
        ],
    ]


def main(description: str, measured: Measurement, connections: int) -> None:
    """A serving script's command line: measure, print the machine and the table."""
    args = arguments(description, connections=connections, seconds=8)
    deadline(120 + args.rounds * 2 * (args.seconds + 5))
    print(f"machine: {machine()}")
    print(table(link_rows(args, measured), HEADER))
