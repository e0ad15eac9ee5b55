#!/usr/bin/env python3
"""Long mutation-fuzzing runs: damaged dump images (and cartridges), as tables.

Runs ``tests/dumptool/image_fuzz.py``: COUNT mutants of images made by
pydump and by the real dump 0.4b47 (plain and ``-z``), each through
``pyrestore -t``, ``-x`` and ``-C`` and the real ``restore -x``, then prints
one row per mutant class::

    | mutant class | mutants | tracebacks | hangs | escapes | files recovered pyrestore | ...

and, below it, one line per mutant that went wrong (its class, how it was
made, what happened, where the mutant was kept).  ``--cartridges N`` also
runs N cartridge mutants through ``tests/tapelib/cartridge_fuzz.py`` (when
that module is there) and prints its table.  The same seed gives the same
mutants.  Needs root, the real dump/restore, mke2fs, losetup and setfacl.
The pyrestore under test is that of the Python running this file (its
venv), so ``/other/checkout/.venv/bin/python bench/fuzz.py`` fuzzes that
checkout's code with these mutants.

    .venv/bin/python bench/fuzz.py --seed 1 --count 1000 --workdir /tmp/fuzz
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The fuzzer's modules from this checkout; dumptool (the pyrestore under test) from
# the venv's own (editable) install, so another checkout's venv fuzzes its own code.
sys.path.insert(0, str(REPO / "tests" / "dumptool"))

import image_fuzz  # noqa: E402


def cartridge_module():
    """``tests/tapelib/cartridge_fuzz.py``, or None where it does not exist yet."""
    sys.path.insert(0, str(REPO / "tests" / "tapelib"))
    try:
        import cartridge_fuzz
    except ImportError:
        return None
    finally:
        sys.path.pop(0)
    return cartridge_fuzz


def cartridge_table(results: list) -> str:
    """Outcomes per cartridge mutant kind."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in results:
        counts[r.kind][r.outcome] += 1
    outcomes = ("ok", "traceback", "hang", "destroyed")
    rows = [(kind, sum(c.values()), *(c[o] for o in outcomes)) for kind, c in sorted(counts.items())]
    total = collections.Counter()
    for c in counts.values():
        total.update(c)
    rows.append(("total", sum(total.values()), *(total[o] for o in outcomes)))
    return image_fuzz.format_table(rows, ("cartridge mutant", "mutants", *outcomes))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=1000, help="image mutants (0: none)")
    p.add_argument("--cartridges", type=int, default=0, metavar="N", help="cartridge mutants (default none)")
    p.add_argument("--workdir", type=Path, help="work folder (kept; default a temporary one)")
    p.add_argument("--timeout", type=float, default=image_fuzz.TIMEOUT, help="seconds per tool run")
    p.add_argument("--no-real", action="store_true", help="do not run the real restore")
    p.add_argument("--kinds", help="comma-separated image mutant classes (default all)")
    p.add_argument("--index", type=int, action="append", metavar="I",
                   help="run only mutant I of the seed (repeatable): replay a finding")
    p.add_argument("--jsonl", type=Path, help="also write every result there, one JSON object a line")
    p.add_argument("-v", action="store_true", help="a line per mutant as it is done")
    args = p.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fuzz-"))
    # offset maps and contexts kept out of /var/lib/snapdump, and out of the workdir the escape check watches
    os.environ["SNAPDUMP_STATE_DIR"] = tempfile.mkdtemp(prefix="fuzz-state-")
    kinds = tuple(args.kinds.split(",")) if args.kinds else image_fuzz.KINDS
    start = time.monotonic()
    out = args.jsonl.open("w") if args.jsonl else None

    def progress(r: image_fuzz.FuzzResult) -> None:
        if out:
            out.write(json.dumps(r.__dict__) + "\n")
            out.flush()
        if args.v:
            print(f"{time.monotonic() - start:7.1f}s #{r.index} {r.kind} {r.image}: {r.outcome} "
                  f"{r.recovered}/{r.recovered_real} {r.mutation}", file=sys.stderr, flush=True)

    status = 0
    if args.index:
        args.count = max(args.count, max(args.index) + 1)
    if args.count:
        results = image_fuzz.run(args.seed, args.count, workdir, timeout=args.timeout, kinds=kinds,
                                 real=not args.no_real, indexes=args.index, progress=progress)
        print(f"image mutants: seed {args.seed}, {len(results)} mutants, workdir {workdir}, "
              f"{time.monotonic() - start:.0f} s")
        print(image_fuzz.format_table(image_fuzz.summary(results)))
        bad = [r for r in results if r.outcome != "ok" or r.recovered < r.recovered_real]
        for r in bad:
            print(f"#{r.index} {r.kind} {r.image}: {r.outcome} {'; '.join(r.problems)} "
                  f"(files {r.recovered} vs real {r.recovered_real}) {r.mutation} {r.detail} {r.mutant}")
        status = int(any(r.outcome != "ok" for r in results))
    if args.cartridges:
        module = cartridge_module()
        if module is None:
            print("cartridge mutants: tests/tapelib/cartridge_fuzz.py is not there; skipped", file=sys.stderr)
        else:
            cstart = time.monotonic()
            (workdir / "cartridges").mkdir(parents=True, exist_ok=True)
            cresults = module.run(args.seed, args.cartridges, workdir / "cartridges")
            print(f"\ncartridge mutants: seed {args.seed}, {len(cresults)} mutants, "
                  f"{time.monotonic() - cstart:.0f} s")
            print(cartridge_table(cresults))
            for r in cresults:
                if r.outcome != "ok":
                    print(f"{r.kind}: {r.outcome} {r.detail}")
            status |= int(any(r.outcome != "ok" for r in cresults))
    if out:
        out.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
