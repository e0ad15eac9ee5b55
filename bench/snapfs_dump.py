#!/usr/bin/env python3
"""pydump of a snapfs volume (its snapshot read straight from the store) against tar
through the mount, and pydump and tar of the same tree on tmpfs, in one run.

Builds the tree of bench/dump_restore.py (default a 128 MiB file and 10,000
files of 4 KiB in 100 folders) on tmpfs (``/dev/shm``), copies it into a
mounted snapfs volume kept on tmpfs too (so the disk plays no part), takes
snapshot ``bench`` of it, then times once each:

* ``pydump -0 -f IMAGE MOUNT`` (makes, holds, reads and deletes its own
  ``snapshot_for_backup.N``: the whole engine, start-up included)
* ``tar -cf TAR -C MOUNT/.snapshot/bench .`` (the same tree through FUSE)
* ``pydump -0 -f IMAGE TREE`` and ``tar -cf TAR -C TREE .`` on tmpfs

and prints each figure, then::

    ratio snapfs-dump-vs-mount-tar 4.1   (tar through the mount / pydump of the volume; goal >= 3)
    ratio snapfs-dump-vs-tmpfs-tar 1.3   (pydump of the volume / tar on tmpfs; goal <= 1.5)
    ratio snapfs-dump-vs-tmpfs-dump 1.2  (pydump of the volume / pydump on tmpfs)

The FUSE side is read once, cold for its snapshot nodes (as a backup reads
a fresh snapshot); the tmpfs sides are warm.

``--runs N`` (for a loaded machine) times the pydump and tmpfs sides N times,
alternated, and prints medians (tar through the mount stays one cold read);
the ``cpu`` lines give each side's median CPU time (user + system), which
waiting for a busy CPU does not inflate.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dump_restore import BIN, MIB, build_tree, byte_compiled, run_child  # noqa: E402


def volume_of_tree(args: argparse.Namespace, tree: Path, vol: Path, mnt: Path) -> int:
    """The bench's tree (``args``: big_mib, files, dirs) built at ``tree`` and copied into a new
    snapfs volume ``vol`` mounted at ``mnt``; the volume's size."""
    from snapfs import Volume

    build_tree(tree, args.big_mib, args.files, args.dirs)
    size = (args.big_mib + args.files * 4 // 1024 + 64) * MIB * 2
    Volume.create(vol, size, args.files + 1000, name="bench", block_size=4096).close()
    mnt.mkdir()
    subprocess.run([str(BIN / "snapfs"), "mount", str(vol), str(mnt)], check=True)
    subprocess.run(["cp", "-a", f"{tree}/.", str(mnt)], check=True)
    return size


def tree_arguments(description: str) -> argparse.ArgumentParser:
    """A bench's parser with the tree's flags (see :func:`volume_of_tree`) and its work folder."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--big-mib", type=int, default=128, help="size of the big file (default 128)")
    parser.add_argument("--files", type=int, default=10000, help="number of 4 KiB files (default 10000)")
    parser.add_argument("--dirs", type=int, default=100, help="folders they are spread over (default 100)")
    parser.add_argument("--dir", default="/dev/shm", help="work folder, on tmpfs (default /dev/shm)")
    return parser


def main() -> int:
    parser = tree_arguments(__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1,
                        help="time the pydump and tmpfs sides this many times, alternated: medians (default 1)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="snapfs-dump-bench-", dir=args.dir))
    # the dumps' offset maps and contexts stay in the bench's folder, not /var/lib/snapdump
    os.environ["SNAPDUMP_STATE_DIR"] = str(work / "state")
    tree, vol, mnt = work / "tree", work / "vol", work / "mnt"
    image, tarball = work / "image.dump", work / "tree.tar"
    snapfs = str(BIN / "snapfs")
    mounted = False
    try:
        byte_compiled()  # as installed: no module compiled again in a timed run
        start = time.perf_counter()
        mounted = True  # (unmounted below, also when mounting it failed)
        volume_of_tree(args, tree, vol, mnt)
        subprocess.run([snapfs, "snapshot", "create", str(mnt), "bench"], check=True, stdout=subprocess.DEVNULL)
        print(f"# tree: {args.big_mib} MiB file + {args.files} x 4 KiB files in {args.dirs} folders, on tmpfs "
              f"and in a snapfs volume on tmpfs (built in {time.perf_counter() - start:.1f} s)")
        walls: dict[str, list[float]] = {}
        cpus: dict[str, list[float]] = {}

        def timed(key: str, argv: list[str]) -> None:
            for path in (image, tarball):  # each run writes a new file, as the first one does
                path.unlink(missing_ok=True)
            before = os.times()
            seconds, _ = run_child(argv)
            after = os.times()
            walls.setdefault(key, []).append(seconds)
            cpus.setdefault(key, []).append(after.children_user - before.children_user
                                            + after.children_system - before.children_system)

        timed("tar-mount", ["tar", "-cf", str(tarball), "-C", str(mnt / ".snapshot" / "bench"), "."])
        vol_image = 0
        run_child(["tar", "-cf", str(tarball), "-C", str(tree), "."])  # warm the tmpfs side
        for _ in range(max(args.runs, 1)):
            timed("dump-vol", [str(BIN / "pydump"), "-0", "--quiet", "-f", str(image), str(mnt)])
            vol_image = image.stat().st_size
            timed("dump-tmpfs", [str(BIN / "pydump"), "-0", "--quiet", "-f", str(image), str(tree)])
            timed("tar-tmpfs", ["tar", "-cf", str(tarball), "-C", str(tree), "."])
        wall = {key: statistics.median(values) for key, values in walls.items()}
        cpu = {key: statistics.median(values) for key, values in cpus.items()}
        print(f"pydump of the volume      {wall['dump-vol']:6.2f} s  image {vol_image / MIB:.0f} MiB")
        print(f"tar through the mount     {wall['tar-mount']:6.2f} s")
        print(f"pydump on tmpfs           {wall['dump-tmpfs']:6.2f} s")
        print(f"tar on tmpfs              {wall['tar-tmpfs']:6.2f} s")
        print(f"ratio snapfs-dump-vs-mount-tar {wall['tar-mount'] / wall['dump-vol']:.2f}")
        print(f"ratio snapfs-dump-vs-tmpfs-tar {wall['dump-vol'] / wall['tar-tmpfs']:.2f}")
        print(f"ratio snapfs-dump-vs-tmpfs-dump {wall['dump-vol'] / wall['dump-tmpfs']:.2f}")
        if args.runs > 1:
            print(f"# medians of {args.runs} alternated runs (tar through the mount: one cold read)")
        print(f"cpu pydump of the volume  {cpu['dump-vol']:6.2f} s  tar through the mount {cpu['tar-mount']:.2f} s  "
              f"pydump on tmpfs {cpu['dump-tmpfs']:.2f} s  tar on tmpfs {cpu['tar-tmpfs']:.2f} s")
        print(f"cpu ratio snapfs-dump-vs-tmpfs-tar {cpu['dump-vol'] / max(cpu['tar-tmpfs'], 1e-3):.2f}")
        return 0
    finally:
        if mounted:
            subprocess.run([snapfs, "unmount", str(mnt)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
