"""13. How long a CLI command takes before it does anything: ``openpan --help`` and
``openpan ls`` (against a running server, credentials from the environment), wall time of
whole processes, the median of ``--runs``; goal < 0.3 s. Prints the slowest imports too
(``python -X importtime``).

    python bench/cli_start.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import Openpan, machine, median, table, workdir

OPENPAN = [sys.executable, "-m", "openpan"]


def wall(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
        times.append(time.perf_counter() - started)
    return times


def slowest_imports(command: list[str], count: int = 8) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command[1:]], capture_output=True, text=True
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].strip()))
    top = sorted(rows, reverse=True)[:count]
    return [f"{name} {micros / 1000:.0f} ms" for micros, name in top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(machine())
    with workdir() as root:
        server = Openpan(root / "openpan")
        server.start()
        try:
            env = {
                **os.environ,
                "OPENPAN_BASE_URL": server.url,
                "OPENPAN_TOKEN": server.token,
                "OPENPAN_CLI_CONFIG": str(root / "cli.ini"),
            }
            python = wall([sys.executable, "-c", "pass"], env, args.runs)
            helps = wall([*OPENPAN, "--help"], env, args.runs)
            lists = wall([*OPENPAN, "ls", "/"], env, args.runs)
        finally:
            server.stop()
    rows = [
        ["python -c pass (the interpreter alone)", f"{median(python) * 1000:.0f} ms", ""],
        ["13. openpan --help", f"{median(helps) * 1000:.0f} ms", "goal < 300 ms"],
        ["13. openpan ls /", f"{median(lists) * 1000:.0f} ms", "goal < 300 ms"],
    ]
    print(table(rows, ["command", "median wall time", "note"]))
    print("slowest imports of openpan --help (cumulative):")
    for line in slowest_imports([*OPENPAN, "--help"]):
        print("  " + line)


if __name__ == "__main__":
    main()
