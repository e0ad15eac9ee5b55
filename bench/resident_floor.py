#!/usr/bin/env python3
"""The floor of a resident dump engine: how near tar on tmpfs a pydump of a snapfs volume
could come if the engine stayed loaded between dumps (as ONTAP's stays in the filer) and a
thin ``pydump`` only handed it each dump.

Issue 13's last goal is pydump of a volume within 1.5x of tar on tmpfs;
bench/snapfs_dump.py measures today's pydump (its own interpreter each time).  This bench
measures the design that would remove start-up from it, without building it:

* ``engine``: this process, with pydump's modules and every module a dump of the volume
  imports on its way loaded (found by a first dump in a forked child), then frozen out of
  the collector's sight; each dump is a ``fork`` of it running pydump's ``main`` (a fresh
  process per dump, as a real engine would need for its pid-keyed sessions, holders and
  contexts, its signals and its exit), timed from the fork to the parent's ``waitpid``;
* ``client``: the least a thin pydump could cost, the venv's interpreter started and
  ended (``python -c pass``), with nothing of its own to do;
* ``tar``: ``tar -cf TAR -C TREE .`` of the same tree on tmpfs; ``pydump``: today's pydump
  of the volume, for scale.

All four alternate ``--runs`` times (medians); then::

    ratio resident-floor-vs-tmpfs-tar 1.6     ((engine + client) / tar; the goal is <= 1.5)
    ratio resident-engine-vs-tmpfs-tar 1.4    (engine alone / tar)
    ratio pydump-vs-tmpfs-tar 2.0             (today's pydump / tar)
"""

from __future__ import annotations

import importlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dump_restore import BIN, byte_compiled, run_child  # noqa: E402
from snapfs_dump import tree_arguments, volume_of_tree  # noqa: E402


def _forked_dump(argv: list[str], report: int | None = None) -> tuple[float, int]:
    """Seconds from fork to reaping of a child running pydump's main(argv) with its stderr on
    /dev/null, and its exit status; with ``report``, the child writes there the names of the
    modules the dump imported."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: one dump, then out without the interpreter's teardown
        code = 1
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            before = set(sys.modules)
            from dumptool.cli import pydump
            code = pydump.main(argv)
            if report is not None:
                os.write(report, "\n".join(sorted(set(sys.modules) - before)).encode())
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return time.perf_counter() - start, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = tree_arguments(__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="alternated runs of each side: medians (default 9)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="resident-floor-bench-", dir=args.dir))
    os.environ["SNAPDUMP_STATE_DIR"] = str(work / "state")
    tree, vol, mnt = work / "tree", work / "vol", work / "mnt"
    image, tarball = work / "image.dump", work / "tree.tar"
    dump_argv = ["-0", "--quiet", "-f", str(image), str(mnt)]
    mounted = False
    try:
        byte_compiled()
        mounted = True
        volume_of_tree(args, tree, vol, mnt)
        # the engine: what a dump imports, loaded here once (a first dump in a child names it)
        r, w = os.pipe()
        _, code = _forked_dump(dump_argv, report=w)
        os.close(w)
        with os.fdopen(r, "rb") as names:
            loaded = names.read().decode().split()
        if code:
            raise SystemExit(f"resident_floor: the first dump failed with status {code}")
        for name in loaded:
            importlib.import_module(name)
        import gc
        gc.collect()
        gc.freeze()
        times: dict[str, list[float]] = {}
        for _ in range(max(args.runs, 1)):
            image.unlink(missing_ok=True)
            seconds, code = _forked_dump(dump_argv)
            if code:
                raise SystemExit(f"resident_floor: a forked dump failed with status {code}")
            times.setdefault("engine", []).append(seconds)
            times.setdefault("client", []).append(run_child([str(BIN / "python"), "-c", "pass"])[0])
            tarball.unlink(missing_ok=True)
            times.setdefault("tar", []).append(run_child(["tar", "-cf", str(tarball), "-C", str(tree), "."])[0])
            image.unlink(missing_ok=True)
            times.setdefault("pydump", []).append(run_child([str(BIN / "pydump"), *dump_argv])[0])
        med = {key: statistics.median(values) for key, values in times.items()}
        print(f"# {args.big_mib} MiB file + {args.files} x 4 KiB files; medians of {args.runs} alternated runs")
        print(f"dump forked from a loaded engine {med['engine']:6.3f} s")
        print(f"a thin client's least start      {med['client']:6.3f} s")
        print(f"tar on tmpfs                     {med['tar']:6.3f} s")
        print(f"today's pydump of the volume     {med['pydump']:6.3f} s")
        print(f"ratio resident-floor-vs-tmpfs-tar {(med['engine'] + med['client']) / med['tar']:.2f}")
        print(f"ratio resident-engine-vs-tmpfs-tar {med['engine'] / med['tar']:.2f}")
        print(f"ratio pydump-vs-tmpfs-tar {med['pydump'] / med['tar']:.2f}")
        return 0
    finally:
        if mounted:
            subprocess.run([str(BIN / "snapfs"), "unmount", str(mnt)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
