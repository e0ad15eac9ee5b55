#!/usr/bin/env python3
"""Loopback tape throughput against dd, in one run.

Writes and reads SIZE (default 1 GiB) through a loopback drive on a fresh
shelf with 64 KiB and 256 KiB records, and does the same with ``dd`` to and
from a plain file with the same block size.  Both sides make their data
durable before the clock stops (the drive fsyncs the cartridge when it is
closed; dd runs with ``conv=fsync``), and both read back from a warm page
cache, so the comparison is of the software path, not of the disk.

Prints each figure, then one line per comparison::

    ratio write-64k 0.83

(our MB/s divided by dd's; the goal is at least 0.7).  Medians of --runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tapelib import Shelf, open_device  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tape_write(nst: str, size: int, record: int) -> None:
    buf = os.urandom(record)
    with open_device(nst, writable=True) as tape:
        tape.rewind()
        for _ in range(size // record):
            tape.write(buf)


def tape_read(nst: str, size: int, record: int) -> None:
    buffer = bytearray(record)  # one buffer for every record, as dd reuses its own
    with open_device(nst) as tape:
        tape.rewind()
        got = 0
        while True:
            length = tape.readinto(buffer)
            if not length:
                break
            got += length
    if got != size:
        raise SystemExit(f"bench: read back {got} bytes, expected {size}")


def dd(args: list[str]) -> None:
    subprocess.run(["dd", "status=none", *args], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="tape-bench-", dir=args.dir))
    # the dumps' offset maps and contexts stay in the bench's folder, not /var/lib/snapdump
    os.environ["SNAPDUMP_STATE_DIR"] = str(work / "state")
    try:
        shelf = Shelf.create(work / "shelf", drives=1, slots=1)
        shelf.new_cartridge("BENCH1", capacity=size * 2)
        shelf.load("BENCH1")
        nst = str(shelf.device_path(0, rewind=False))
        plain = work / "dd.img"
        print(f"# {args.size_mib} MiB per run, median of {args.runs} runs, MB/s = 1e6 bytes/s")
        ratios = []
        for record in (64 * 1024, 256 * 1024):
            label = f"{record // 1024}k"
            count = size // record
            figures: dict[str, list[float]] = {k: [] for k in ("tw", "tr", "dw", "dr")}
            for _ in range(args.runs):
                figures["tw"].append(size / timed(lambda: tape_write(nst, size, record)) / 1e6)
                figures["tr"].append(size / timed(lambda: tape_read(nst, size, record)) / 1e6)
                figures["dw"].append(size / timed(lambda: dd(
                    ["if=/dev/zero", f"of={plain}", f"bs={record}", f"count={count}", "conv=fsync"])) / 1e6)
                figures["dr"].append(size / timed(lambda: dd(
                    [f"if={plain}", "of=/dev/null", f"bs={record}"])) / 1e6)
            med = {k: statistics.median(v) for k, v in figures.items()}
            print(f"loopback write-{label} {med['tw']:.0f} MB/s   dd write-{label} {med['dw']:.0f} MB/s")
            print(f"loopback read-{label}  {med['tr']:.0f} MB/s   dd read-{label}  {med['dr']:.0f} MB/s")
            ratios.append((f"write-{label}", med["tw"] / med["dw"]))
            ratios.append((f"read-{label}", med["tr"] / med["dr"]))
        for name, value in ratios:
            print(f"ratio {name} {value:.2f}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
