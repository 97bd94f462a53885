"""All measurements in one run, one table (what docs/benchmarks.md shows).

python bench/run_all.py [--seconds 8] [--rounds 5] [--upload-rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time

import large_file
import small_image
import upload
from common import HEADER, deadline, machine, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs per side")
    parser.add_argument("--upload-rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--openpan-arg", action="append", default=[])
    parser.add_argument("--openpan-env", action="append", default=[])
    args = parser.parse_args()
    deadline(600 + 2 * 2 * args.rounds * (args.seconds + 5) + (args.upload_rounds + 1) * 240)
    common = {"rounds": args.rounds, "seconds": args.seconds}
    extra = {"openpan_arg": args.openpan_arg, "openpan_env": args.openpan_env}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result = small_image.rows(argparse.Namespace(connections=64, **common, **extra))
    result += large_file.rows(argparse.Namespace(connections=16, **common, **extra))
    result += upload.rows(
        argparse.Namespace(size_mib=args.size_mib, rounds=args.upload_rounds, parallel=4, **extra)
    )
    versions = subprocess.run(
        ["nginx", "-v"], capture_output=True, text=True, check=False
    ).stderr.strip()
    print(f"run: {started}; {platform.platform()}; {versions}")
    print(f"machine: {machine()}")
    print(table(result, HEADER))


if __name__ == "__main__":
    main()
