"""Two versions of openpan on the same offline-download run, alternating: is a change faster?

The many-files half of ``offline_vs_aria2.py`` (every URL submitted at once, seconds to the
last ``status: 2``), run against a server from each checkout in turn (A B A B ...), so that
whatever else the machine does weighs on both alike. Prints the median wall time and server
CPU seconds of each, and every run. A change worth a few percent needs several rounds: on two
shared cores one run moves by 10-20 %.

    git worktree add /tmp/before HEAD~1
    python bench/offline_ab.py /tmp/before . [--rounds 5] [--files 200] [--size 5000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from functools import partial
from pathlib import Path

from common import Nginx, alternate, deadline, ensure_tools, median, random_file
from common import workdir as scratch
from offline_vs_aria2 import openpan


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("a", type=Path, help="checkout A (e.g. before the change)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", type=int, default=5_000_000)
    args = parser.parse_args()
    checkouts = {"A": args.a.resolve(), "B": args.b.resolve()}
    for checkout in checkouts.values():
        if not (checkout / "openpan" / "__main__.py").is_file():
            sys.exit(f"{checkout} is not an openpan checkout")
    deadline(300 + args.rounds * 120)
    ensure_tools()
    # The bench's ``openpan user add`` runs with ``-m`` too: from a directory without a
    # package in it, so PYTHONPATH picks its version as well.
    os.chdir(tempfile.gettempdir())
    with scratch() as root:
        nginx = Nginx(root / "nginx")
        nginx.start()
        try:
            urls = []
            for number in range(args.files):
                path = root / "nginx" / "www" / f"f{number}.bin"
                random_file(path, args.size).chmod(0o644)
                urls.append(f"{nginx.url}/f{number}.bin")
            cpu: dict[str, list[float]] = {name: [] for name in checkouts}
            times = alternate(
                args.rounds,
                {
                    name: partial(openpan, root / "openpan", urls, [], cpu[name], checkout)
                    for name, checkout in checkouts.items()
                },
            )
        finally:
            nginx.stop()
    print(f"{args.files} x {args.size / 1e6:g} MB at once, {args.rounds} alternating rounds")
    for name, checkout in checkouts.items():
        runs = " ".join(f"{t:.2f}" for t in times[name])
        print(
            f"{name} {checkout}: {median(times[name]):.2f} s (runs: {runs}), "
            f"server CPU {median(cpu[name]):.2f} s"
        )
    print(f"B / A: {median(times['B']) / median(times['A']):.3f}")


if __name__ == "__main__":
    main()
