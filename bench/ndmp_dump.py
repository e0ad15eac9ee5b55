#!/usr/bin/env python3
"""An NDMP level 0 of a snapfs volume (the real ndmjob driving pyndmpd, LOCAL,
to a loopback drive) against pydump of the same volume to the same kind of
loopback drive, in one run.

Builds the tree of bench/snapfs_dump.py (default a 128 MiB file and 10,000
files of 4 KiB in 100 folders) in a snapfs volume on tmpfs (``/dev/shm``),
a shelf on tmpfs with two drives, and starts one ``pyndmpd`` serving both
(not timed).  Then, --runs times, alternated (the first to go switches
each round), times:

* ``ndmjob -c -D 127.0.0.1:PORT/4n -f SHELF/nst0 -B dump -C MOUNT -E LEVEL=0
  -E UPDATE=n -I INDEX``: the backup as a DMA runs it, file history posted
  and written to the index;
* ``pydump -0 -f SHELF/st1 MOUNT``: the same engine run from the command line.

Both make, read and delete their own ``snapshot_for_backup.N`` and write
10 KiB records (ndmjob's default record size, pydump's default blocking
factor).  Prints each round's figures, then::

    ratio ndmp_vs_pydump 1.08   (the median of the rounds' NDMP / pydump wall times; goal <= 1.2)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dump_restore import BIN, MIB, byte_compiled, run_child  # noqa: E402
from snapfs_dump import volume_of_tree  # noqa: E402

NDMJOB = "/usr/lib/amanda/ndmjob"
_SERVING = re.compile(r"serving NDMP v4 on \S+ port (\d+)")


def start_pyndmpd(shelf: Path, volume: Path, work: Path) -> tuple[subprocess.Popen, int]:
    log = (work / "pyndmpd.log").open("w")
    proc = subprocess.Popen([str(BIN / "pyndmpd"), "--foreground", "--listen", "127.0.0.1:0", "--shelf", str(shelf),
                             "--volume", str(volume), "--dumpdates", str(work / "dumpdates"),
                             "--spool", str(work)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = _SERVING.search((work / "pyndmpd.log").read_text())
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("bench: pyndmpd did not start:\n" + (work / "pyndmpd.log").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=128, help="size of the big file (default 128)")
    parser.add_argument("--files", type=int, default=10000, help="number of 4 KiB files (default 10000)")
    parser.add_argument("--dirs", type=int, default=100, help="folders they are spread over (default 100)")
    parser.add_argument("--runs", type=int, default=3, help="alternated rounds (default 3)")
    parser.add_argument("--dir", default="/dev/shm", help="work folder, on tmpfs (default /dev/shm)")
    args = parser.parse_args()
    from tapelib import Shelf

    work = Path(tempfile.mkdtemp(prefix="ndmp-dump-bench-", dir=args.dir))
    # the dumps' offset maps and contexts stay in the bench's folder, not /var/lib/snapdump
    os.environ["SNAPDUMP_STATE_DIR"] = str(work / "state")
    tree, vol, mnt = work / "tree", work / "vol", work / "mnt"
    snapfs = str(BIN / "snapfs")
    mounted = False
    server: subprocess.Popen | None = None
    try:
        byte_compiled()  # as installed: no module compiled again in a timed run
        start = time.perf_counter()
        mounted = True  # (unmounted below, also when mounting it failed)
        size = volume_of_tree(args, tree, vol, mnt)
        shutil.rmtree(tree)
        capacity = size * 2
        shelf = Shelf.create(work / "shelf", drives=2, slots=2)
        for drive, barcode in enumerate(("NDMP", "PYDUMP")):
            shelf.new_cartridge(barcode, capacity=capacity)
            shelf.load(barcode, drive=drive)
        server, port = start_pyndmpd(shelf.path, mnt, work)
        print(f"# tree: {args.big_mib} MiB file + {args.files} x 4 KiB files in {args.dirs} folders, in a snapfs "
              f"volume on tmpfs (built in {time.perf_counter() - start:.1f} s); pyndmpd on 127.0.0.1:{port}")
        index = work / "index"
        ndmp = [NDMJOB, "-c", "-D", f"127.0.0.1:{port}/4n", "-f", str(shelf.device_path(0, rewind=False)),
                "-B", "dump", "-C", str(mnt), "-E", "LEVEL=0", "-E", "UPDATE=n", "-I", str(index)]
        pydump = [str(BIN / "pydump"), "-0", "--quiet", "-f", str(shelf.device_path(1, rewind=True)), str(mnt)]
        ratios = []
        for round_ in range(args.runs):
            wall = {}
            order = [("ndmp", ndmp), ("pydump", pydump)]
            index.unlink(missing_ok=True)
            for name, argv in order if round_ % 2 == 0 else order[::-1]:
                wall[name], _ = run_child(argv)
            if not re.search(r"^DE DUMP_DATE=", index.read_text(), re.M):
                raise SystemExit("bench: the NDMP backup did not end well:\n" + index.read_text()[-2000:])
            ratios.append(wall["ndmp"] / wall["pydump"])
            print(f"round {round_ + 1}: ndmjob+pyndmpd {wall['ndmp']:6.2f} s   pydump {wall['pydump']:6.2f} s   "
                  f"ratio {ratios[-1]:.2f}")
        print(f"ratio ndmp_vs_pydump {statistics.median(ratios):.2f}")
        return 0
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        if mounted:
            subprocess.run([snapfs, "unmount", str(mnt)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
