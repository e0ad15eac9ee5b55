#!/usr/bin/env python3
"""Where a snapfs mount spends its time: FUSE requests and daemon CPU per operation.

Runs the workload of ``bench/fs_ops.py`` (a sequential write and read, then
small files created, stat'ed, read and unlinked) on a snapfs volume whose
daemon runs in this process, and prints for each phase the requests the
kernel sent per operation (per MiB or per file), the daemon thread's CPU
time per operation (user and system), and each handler's own CPU time per
request.  CPU time rather than wall time, because the machine this was
developed on is shared: it says what a change saves even when the wall
clock is noisy.  What a phase costs beyond its handlers is the per-request
price of pyfuse3, libfuse, trio and the kernel.

    bench/fs_requests.py [--files N] [--big-mib M] [--cpu C] [--dir D]

Needs root (drop_caches) and /dev/fuse.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fs_ops import FILE_SIZE, NDIRS, SMALL_PY, drop_caches  # noqa: E402
from snapfs import Volume  # noqa: E402
from snapfs import fuse_ops  # noqa: E402
from snapfs import mount as _mount  # noqa: E402

HANDLERS = ("lookup", "forget", "getattr", "readlink", "mknod", "mkdir", "symlink", "create", "link",
            "unlink", "rmdir", "rename", "setattr", "setxattr", "getxattr", "listxattr", "removexattr",
            "open", "read", "write", "flush", "release", "fsync", "opendir", "readdir", "releasedir",
            "fsyncdir", "statfs")


class Meter:
    """Requests and handler CPU time by handler name, counted in the daemon's thread."""

    def __init__(self) -> None:
        self.count: Counter = Counter()
        self.cpu_ns: Counter = Counter()

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        async def measured(*a, **kw):
            self.count[name] += 1
            t = time.thread_time_ns()
            try:
                return await fn(*a, **kw)
            finally:
                self.cpu_ns[name] += time.thread_time_ns() - t
        return measured

    def install(self) -> None:
        """Measure the handlers of every SnapfsOperations made from now on."""
        meter, orig = self, fuse_ops.SnapfsOperations.__init__

        def init(ops, vol):
            orig(ops, vol)
            for name in HANDLERS:
                fn = getattr(ops, name, None)
                if fn is not None:
                    setattr(ops, name, meter.wrap(name, fn))
        fuse_ops.SnapfsOperations.__init__ = init


def thread_times(tid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of thread ``tid`` of this process."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def phases(mnt: Path, files: int, big_mib: int) -> list[tuple[str, list[str], int, str]]:
    small = mnt / "small"
    per_dir = max(1, files // NDIRS)
    out = [("seq_write", ["dd", "if=/dev/zero", f"of={mnt}/big", "bs=1M", f"count={big_mib}", "conv=fsync"],
            big_mib, "MiB"),
           ("seq_read", ["dd", f"if={mnt}/big", "of=/dev/null", "bs=1M"], big_mib, "MiB")]
    out += [(p, [sys.executable, "-c", SMALL_PY, p, str(small), str(NDIRS), str(per_dir), str(FILE_SIZE)],
             per_dir * NDIRS, "file") for p in ("create", "stat", "read", "unlink")]
    return out


def workload(mnt: Path, args, meter: Meter, daemon_tid: int, ready: threading.Event) -> None:
    ready.wait()
    try:
        (mnt / "small").mkdir()
        for phase, argv, n, unit in phases(mnt, args.files, args.big_mib):
            if phase.startswith("seq"):
                drop_caches()
            elif phase == "create":
                os.unlink(mnt / "big")
                os.sync()
            count, cpu = Counter(meter.count), Counter(meter.cpu_ns)
            u0, s0 = thread_times(daemon_tid)
            t0 = time.perf_counter()
            subprocess.run(["taskset", "-c", args.cpu, *argv], check=True, capture_output=True)
            wall = time.perf_counter() - t0
            u1, s1 = thread_times(daemon_tid)
            count, cpu = meter.count - count, meter.cpu_ns - cpu
            total = sum(count.values())
            print(f"{phase:<9} {total / n:6.2f} requests/{unit}  daemon CPU {(u1 - u0) * 1e6 / n:7.0f} us user"
                  f" + {(s1 - s0) * 1e6 / n:5.0f} us system per {unit}  ({wall:.2f} s wall)", flush=True)
            for name, c in count.most_common():
                if c / n >= 0.01:
                    print(f"    {name:<10} {c / n:6.2f}/{unit}  handler {cpu[name] / 1e3 / c:7.1f} us CPU", flush=True)
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--big-mib", type=int, default=128)
    parser.add_argument("--cpu", default="0", help="CPU for the daemon and the workload")
    parser.add_argument("--dir", default=None, help="where the volume goes (default: a temporary folder)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("fs_requests: needs root (drop_caches)")
    work = Path(tempfile.mkdtemp(prefix="fs-requests-", dir=args.dir))
    try:
        voldir, mnt = work / "vol", work / "mnt"
        mnt.mkdir()
        Volume.create(voldir, (args.big_mib + 512) << 20, 4 * args.files + 1000).close()
        meter = Meter()
        meter.install()
        os.sched_setaffinity(0, {int(args.cpu)})
        ready = threading.Event()
        th = threading.Thread(target=workload, args=(mnt, args, meter, threading.get_native_id(), ready),
                              daemon=True)
        th.start()
        _mount._serve(Volume.open(voldir), mnt, [], ready.set)
        th.join()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
