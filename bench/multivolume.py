#!/usr/bin/env python3
"""The multi-volume property, run long: pydump spanning two shelf cartridges.

Each draw is a first cartridge of 600 KiB to 1.2 MiB, a blocking factor of
10, 20, 32 or 64 and a tree 1.05 to 3 times that cartridge; the dump must
span onto the blank second cartridge and come back whole through
``pyrestore -r``, ``pyrestore -C`` and the real ``restore -r`` reading the
drive through ``pyrmt`` (see ``tests/dumptool/spanning.py``; the test suite
runs a few of the same draws).  Prints one line per failing layout, then a
count; exits 1 if any failed::

    .venv/bin/python bench/multivolume.py --count 200 --seed 7
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "dumptool")]

from spanning import check_layout, layouts  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="layouts to draw (default 100)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="of the draws (default: the time)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder of each failing layout")
    args = parser.parse_args()
    print(f"seed {args.seed}, {args.count} layouts")
    failed = 0
    started = time.monotonic()
    for n, layout in enumerate(layouts(args.seed, args.count), 1):
        workdir = Path(tempfile.mkdtemp(prefix=f"multivolume-{n}-"))
        os.environ["SNAPDUMP_STATE_DIR"] = str(workdir / "state")  # offset maps and contexts stay here
        try:
            check_layout(workdir, layout)
        except AssertionError as exc:
            failed += 1
            # Without pytest's rewriting a bare assert says nothing: show where it failed.
            first = " | ".join(str(exc).strip().splitlines()[:6]) or traceback.format_exc().splitlines()[-2].strip()
            print(f"FAIL {layout}: {first}" + (f" (kept in {workdir})" if args.keep else ""), flush=True)
            if args.keep:
                continue
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{failed} of {args.count} layouts failed in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
