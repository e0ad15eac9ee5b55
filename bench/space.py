#!/usr/bin/env python3
"""Space a tree costs on snapfs against ext4 (4 KiB blocks), as a filer admin sees it.

Each tree (default /usr/share/doc and the system Python's library, /usr/lib/python3.N) is copied
into a fresh snapfs volume through the Volume API (regular files written in
128 KiB calls, as the FUSE mount receives ``cp``'s writes; directories and
symbolic links as they are; hard links copied as separate files) and onto a
fresh ext4 file system made with 4 KiB blocks on a loop-mounted image file,
with ``cp -a``.  Prints per tree::

    ratio snapfs_used_vs_ext4_du NAME VALUE

where VALUE is ``snapfs df``'s used bytes over ``du -s -B1`` of the ext4 copy.
Goal: <= 1.25.  Needs root (mount).  ``--block-size`` picks the volume's
block size (default: the snapfs default).

With ``--seq N``, it then runs ``bench/fs_ops.py`` (small parameters: 256 MiB
sequential, 1,000 small files) N times on volumes of 64 KiB blocks (the old
default) and of ``--block-size``, alternated, and prints the medians::

    seq 65536 seq_write MB/s ...   (and seq_read, per block size)
    ratio seq_write-vs-64k VALUE   (the chosen block size / 64 KiB)
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from snapfs import DEFAULT_BLOCK_SIZE, Volume  # noqa: E402

CHUNK = 128 * 1024


def copy_into_volume(src: Path, vol: Volume) -> None:
    """``src``'s tree under the volume's root (batch mode, one commit per directory)."""
    vol.set_batch(True)
    todo = [(src, 1)]
    while todo:
        d, ino = todo.pop()
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            st = e.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                todo.append((Path(e.path), vol.mkdir(ino, e.name, st.st_mode & 0o7777).ino))
            elif stat.S_ISLNK(st.st_mode):
                vol.symlink(ino, e.name, os.readlink(e.path))
            elif stat.S_ISREG(st.st_mode):
                f = vol.create_file(ino, e.name, st.st_mode & 0o7777).ino
                with open(e.path, "rb") as fh:
                    off = 0
                    while chunk := fh.read(CHUNK):
                        vol.write(f, off, chunk)
                        off += len(chunk)
        vol.commit()


def snapfs_used(src: Path, work: Path, block_size: int) -> tuple[int, int]:
    """``snapfs df``'s used bytes for a copy of ``src``, and the metadata database's size
    (not counted in df, as ext4's inodes are not in du)."""
    voldir = work / "vol"
    with Volume.create(voldir, 8 << 30, 1_000_000, block_size=block_size) as vol:
        copy_into_volume(src, vol)
        vol.commit()
        used = vol.space().used
    meta = sum(f.stat().st_size for f in voldir.glob("snapfs.db*"))
    subprocess.run(["rm", "-rf", str(voldir)], check=True)
    return used, meta


def ext4_du(src: Path, work: Path) -> int:
    img, mnt = work / "ext4.img", work / "ext4"
    mnt.mkdir()
    with open(img, "wb") as fh:
        fh.truncate(2 << 30)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", str(img)], check=True)
    subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
    try:
        subprocess.run(["cp", "-a", str(src), str(mnt / "t")], check=True)
        out = subprocess.run(["du", "-s", "-B1", str(mnt / "t")], check=True, capture_output=True, text=True)
        return int(out.stdout.split()[0])
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
        img.unlink()


def python_tree() -> str:
    """The system Python's library (a tree of .py sources), else this Python's."""
    system = sorted(Path("/usr/lib").glob("python3.*"))
    return str(system[-1]) if system else sysconfig.get_paths()["stdlib"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE)
    parser.add_argument("--dir", default=None, help="where the volume and image go (default: a temporary folder)")
    parser.add_argument("trees", nargs="*", metavar="NAME=PATH",
                        default=["doc=/usr/share/doc", f"python={python_tree()}"])
    parser.add_argument("--seq", type=int, default=0, metavar="N",
                        help="also compare fs_ops.py's sequential figures with 64 KiB blocks, N runs each")
    a = parser.parse_args()
    for spec in a.trees:
        name, _, path = spec.partition("=")
        src = Path(path)
        with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
            work = Path(tmp)
            du = ext4_du(src, work)
            used, meta = snapfs_used(src, work, a.block_size)
        print(f"{name}: ext4 du {du} bytes, snapfs used {used} bytes (block size {a.block_size});"
              f" snapfs metadata database {meta} bytes")
        print(f"ratio snapfs_used_vs_ext4_du {name} {used / du:.3f}", flush=True)
    if a.seq:
        seq_figures(a.seq, a.block_size, a.dir)
    return 0


def seq_figures(runs: int, block_size: int, where: str | None) -> None:
    """fs_ops.py's seq_write and seq_read (snapfs MB/s) with 64 KiB blocks and ``block_size``,
    alternated, ``runs`` each; prints the medians and their ratios."""
    fs_ops = Path(__file__).resolve().parent / "fs_ops.py"
    sizes = (65536, block_size)
    got: dict[int, dict[str, list[float]]] = {b: {"seq_write": [], "seq_read": []} for b in sizes}
    for _ in range(runs):
        for b in sizes:
            argv = [sys.executable, str(fs_ops), "--runs", "1", "--big-mib", "256", "--files", "1000",
                    "--snap-files", "1000", "--snap-runs", "3", "--block-size", str(b)]
            if where:
                argv += ["--dir", where]
            out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
            for k in got[b]:
                m = re.search(rf"^{k}\s+native\s+\S+ MB/s\s+snapfs\s+(\S+) MB/s", out, re.MULTILINE)
                if not m:
                    raise SystemExit(f"bench: no {k} figure in fs_ops.py's output")
                got[b][k].append(float(m.group(1)))
    for b in sizes:
        for k, v in got[b].items():
            print(f"seq {b} {k} MB/s {statistics.median(v):.0f} (runs: {', '.join(f'{x:.0f}' for x in v)})")
    for k in ("seq_write", "seq_read"):
        print(f"ratio {k}-vs-64k {statistics.median(got[block_size][k]) / statistics.median(got[65536][k]):.3f}")


if __name__ == "__main__":
    sys.exit(main())
