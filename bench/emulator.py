"""Emulator mode (``openpan serve --emulator``), through ``openpan.testing.Emulator``:

11. ``POST /_openpan/reset`` on a store of 10,000 files (5,000 in each space, seeded in one
    call, the bytes on disk); goal < 1 s.
12. A test session of 200 tests, each resetting the emulator (what the ``openpan_emulator``
    fixture does) and uploading one image with the SDK: the fixture's overhead per test
    (its reset) against the test's own work.

    python bench/emulator.py [--files 10000] [--tests 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

from common import machine, median, table, workdir

from openpan.testing import Emulator


def seed_many(emu: Emulator, count: int) -> None:
    batch = 1000
    for start in range(0, count, batch):
        files = [
            {
                "space": "oss" if i % 2 == 0 else "disk",
                "path": f"/bench/{i // 100}/f{i}." + ("png" if i % 2 == 0 else "bin"),
                "size": 2000,
            }
            for i in range(start, min(count, start + batch))
        ]
        emu.seed(files=files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    rows = []
    with workdir() as root, Emulator(data_dir=root / "emulator") as emu:
        resets = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            seed_many(emu, args.files)
            seeded = time.perf_counter() - started
            started = time.perf_counter()
            emu.reset()
            resets.append(time.perf_counter() - started)
            print(f"seeded {args.files} files in {seeded:.1f} s; reset in {resets[-1]:.3f} s")
        rows.append(
            [
                f"11. reset of {args.files:,} files (median of {args.rounds})",
                f"{median(resets) * 1000:.0f} ms",
                "goal < 1 s; each: " + " ".join(f"{r * 1000:.0f}" for r in resets),
            ]
        )

        image = root / "image.png"
        image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20_000))
        overhead, work = [], []
        for number in range(args.tests):
            started = time.perf_counter()
            emu.reset()
            reset_done = time.perf_counter()
            with emu.client() as pan:
                pan.upload(str(image), f"/t{number}")
            overhead.append(reset_done - started)
            work.append(time.perf_counter() - reset_done)
        rows.append(
            [
                f"12. fixture overhead per test ({args.tests} tests)",
                f"{median(overhead) * 1000:.1f} ms",
                f"the test's own work (SDK login + upload): {median(work) * 1000:.1f} ms; "
                f"whole session {sum(overhead) + sum(work):.1f} s",
            ]
        )
    print(table(rows, ["measurement", "result", "note"]))


if __name__ == "__main__":
    main()
