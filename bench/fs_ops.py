#!/usr/bin/env python3
"""File system operations on a snapfs mount against native ext4, in one run.

The workload of the FUSE anchors (``../shared/docs/fuse-anchors.md``): a
sequential write of --big-mib MiB with ``dd conv=fsync``, read back with dd
after dropping caches; then --files x 4 KiB files in 100 directories created,
stat'ed (scandir + lstat, warm), read (warm) and unlinked, each phase a
separate Python process.  It runs on a native directory and on a mounted
snapfs volume, both on one journaled ext4 file system loop-mounted from an
image file the bench makes (and always removes), with the snapfs daemon and
every workload process pinned to CPU 0 (``taskset``).  Runs alternate
native/snapfs; figures are medians of --runs.

Then ``snapshot create`` is timed (through :mod:`snapfs.client`, as the
dump engine and the CLI call it) on two mounted volumes, one with 100 files
and one with --snap-files (default 100,000), median of --snap-runs.

Prints each figure, then one line per comparison::

    ratio create 0.11                  (snapfs / native throughput)
    ratio snapshot-100k-vs-100 1.02    (time on the big volume / the small)

Goals: seq_write and seq_read >= 0.5; create >= 0.08, stat >= 0.15,
read >= 0.08, unlink >= 0.10; snapshot ratio <= 1.5.  Needs root (mount,
drop_caches) and /dev/fuse.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from snapfs import Volume, client  # noqa: E402

SNAPFS = str(Path(sys.executable).parent / "snapfs")
CPU = "0"
NDIRS = 100
FILE_SIZE = 4096
METRICS = ("seq_write", "seq_read", "create", "stat", "read", "unlink")
UNITS = {"seq_write": "MB/s", "seq_read": "MB/s"}

#: One small-file phase; argv: phase root ndirs nfiles fsize.  Prints the files/s.
SMALL_PY = r'''
import os, sys, time
phase, root, ndirs, nfiles, fsize = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
total = ndirs * nfiles
dirs = [os.path.join(root, "d%03d" % d) for d in range(ndirs)]
names = ["f%04d" % f for f in range(nfiles)]
data = b"x" * fsize
t0 = time.perf_counter()
count = 0
if phase == "create":
    for d in dirs:
        os.mkdir(d)
        for n in names:
            with open(os.path.join(d, n), "wb", buffering=0) as fh:
                fh.write(data)
            count += 1
elif phase == "stat":
    for d in dirs:
        with os.scandir(d) as it:
            for e in it:
                os.lstat(e.path)
                count += 1
elif phase == "read":
    nbytes = 0
    for d in dirs:
        for n in names:
            with open(os.path.join(d, n), "rb", buffering=0) as fh:
                while True:
                    b = fh.read(65536)
                    if not b:
                        break
                    nbytes += len(b)
            count += 1
    if nbytes != total * fsize:
        sys.exit("read: got %d bytes, expected %d" % (nbytes, total * fsize))
elif phase == "unlink":
    for d in dirs:
        for n in names:
            os.unlink(os.path.join(d, n))
            count += 1
        os.rmdir(d)
dt = time.perf_counter() - t0
if count != total:
    sys.exit("%s: saw %d files, expected %d" % (phase, count, total))
print(count / dt)
'''


def sh(*argv: str | os.PathLike, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], check=True, text=True, capture_output=True, **kw)


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def dd_rate(argv: list[str]) -> float:
    """MB/s (1e6 bytes/s) from dd's own summary line."""
    r = sh("taskset", "-c", CPU, "dd", *argv)
    m = re.search(r"^(\d+) bytes .* copied, ([\d.]+) s", r.stderr, re.MULTILINE)
    if not m:
        raise SystemExit(f"bench: cannot read dd's summary: {r.stderr.strip()}")
    return int(m.group(1)) / float(m.group(2)) / 1e6


def workload(target: Path, big_mib: int, files: int) -> dict[str, float]:
    """One pass of the anchor workload inside ``target``; figures by metric."""
    work = target / "fs_ops"
    work.mkdir()
    out: dict[str, float] = {}
    try:
        big = work / "big.bin"
        drop_caches()
        out["seq_write"] = dd_rate(["if=/dev/zero", f"of={big}", "bs=1M", f"count={big_mib}", "conv=fsync"])
        drop_caches()
        out["seq_read"] = dd_rate([f"if={big}", "of=/dev/null", "bs=1M"])
        big.unlink()
        small = work / "small"
        small.mkdir()
        os.sync()
        per_dir = max(1, files // NDIRS)
        for phase in METRICS[2:]:
            r = sh("taskset", "-c", CPU, sys.executable, "-c", SMALL_PY, phase, small, NDIRS, per_dir, FILE_SIZE)
            out[phase] = float(r.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def pin_daemon(mnt: Path) -> None:
    with client.open_volume(mnt) as c:
        pid = c.info().pid
    sh("taskset", "-a", "-p", "-c", CPU, str(pid))


def mount_volume(voldir: Path, mnt: Path) -> None:
    mnt.mkdir(exist_ok=True)
    sh(SNAPFS, "mount", voldir, mnt)
    pin_daemon(mnt)


def unmount(mnt: Path) -> None:
    if os.path.ismount(mnt):
        r = subprocess.run([SNAPFS, "unmount", str(mnt)], capture_output=True)
        if r.returncode and os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)


def populate(voldir: Path, nfiles: int) -> None:
    """``nfiles`` empty files in up to 100 directories, written through the Volume API
    (the figure measured is snapshot create, not how the files got there)."""
    with Volume.open(voldir) as vol:
        vol.set_batch(True)  # one commit at close
        ndirs = min(NDIRS, nfiles)
        dirs = [vol.mkdir(1, f"d{d:03d}").ino for d in range(ndirs)]
        for i in range(nfiles):
            vol.create_file(dirs[i % ndirs], f"f{i:06d}")


def time_snapshots(mnts: dict[int, Path], runs: int) -> dict[int, float]:
    """Median seconds of one ``snapshot create`` through the control channel, per volume;
    the volumes take turns, so drift in the machine's speed hits them alike."""
    times: dict[int, list[float]] = {n: [] for n in mnts}
    clients = {n: client.open_volume(m) for n, m in mnts.items()}
    try:
        for i in range(runs):
            for n, c in clients.items():
                t0 = time.perf_counter()
                c.snapshot_create(f"bench.{i}")
                times[n].append(time.perf_counter() - t0)
    finally:
        for c in clients.values():
            c.close()
    return {n: statistics.median(t) for n, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=10_000, help="small files (in 100 directories)")
    parser.add_argument("--snap-files", type=int, default=100_000)
    parser.add_argument("--snap-runs", type=int, default=31)
    parser.add_argument("--dir", default=None, help="where the image file goes (default: a temporary folder)")
    parser.add_argument("--block-size", default=None, help="the snapfs volume's block size (default: snapfs create's)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (loop mount, drop_caches)")

    work = Path(tempfile.mkdtemp(prefix="fs-ops-bench-", dir=args.dir))
    image, backing, mnt = work / "ext4.img", work / "backing", work / "mnt"
    mounts: list[Path] = []
    loop_mounted = False
    try:
        # room for the big file twice (native, snapfs) plus metadata
        image_mib = 2 * args.big_mib + 1024 + args.snap_files // 200
        with open(image, "wb") as f:
            f.truncate(image_mib << 20)
        sh("mkfs.ext4", "-q", "-F", "-O", "has_journal", image)
        backing.mkdir()
        sh("mount", "-o", "loop", image, backing)
        loop_mounted = True
        native = backing / "native"
        native.mkdir()
        voldir = backing / "vol"
        bs = ["--block-size", args.block_size] if args.block_size else []
        sh(SNAPFS, "create", voldir, "--size", f"{args.big_mib + 512}M", "--inodes", str(4 * args.files + 1000), *bs)
        mounts.append(mnt)
        mount_volume(voldir, mnt)

        print(f"# {args.big_mib} MiB sequential, {args.files} x {FILE_SIZE} B files in {NDIRS} dirs; "
              f"median of {args.runs} runs; ext4 (journal) on a loop device; daemon and workload on CPU {CPU}")
        figures: dict[str, dict[str, list[float]]] = {"native": {}, "snapfs": {}}
        for run in range(args.runs):
            for name, target in (("native", native), ("snapfs", mnt)):
                for k, v in workload(target, args.big_mib, args.files).items():
                    figures[name].setdefault(k, []).append(v)
            print(f"# run {run + 1}: " + "  ".join(
                f"{k} {figures['snapfs'][k][-1] / figures['native'][k][-1]:.3f}" for k in METRICS), flush=True)
        med = {n: {k: statistics.median(v) for k, v in f.items()} for n, f in figures.items()}
        for k in METRICS:
            unit = UNITS.get(k, "files/s")
            print(f"{k:<10} native {med['native'][k]:>10.0f} {unit:<7}  snapfs {med['snapfs'][k]:>10.0f} {unit}")
        unmount(mnt)

        snap_mnts, filled = {}, {}
        for n in (100, args.snap_files):
            vdir, vmnt = backing / f"snapvol-{n}", work / f"snapmnt-{n}"
            sh(SNAPFS, "create", vdir, "--size", "1G", "--inodes", str(n + 1000))
            t0 = time.perf_counter()
            populate(vdir, n)
            filled[n] = time.perf_counter() - t0
            mounts.append(vmnt)
            mount_volume(vdir, vmnt)
            snap_mnts[n] = vmnt
        snap_secs = time_snapshots(snap_mnts, args.snap_runs)
        for n, secs in snap_secs.items():
            print(f"snapshot create, {n:>7} files: {secs * 1e3:.2f} ms "
                  f"(median of {args.snap_runs}, turn about; volume filled in {filled[n]:.0f} s)", flush=True)
        for m in snap_mnts.values():
            unmount(m)

        for k in METRICS:
            print(f"ratio {k} {med['snapfs'][k] / med['native'][k]:.3f}")
        print(f"ratio snapshot-100k-vs-100 {snap_secs[args.snap_files] / snap_secs[100]:.2f}")
        return 0
    finally:
        for m in mounts:
            unmount(m)
        if loop_mounted:
            subprocess.run(["umount", str(backing)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
