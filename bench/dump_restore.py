#!/usr/bin/env python3
"""pydump and pyrestore against GNU tar and Linux restore, in one run.

Builds a tree of one big file (default 512 MiB of mixed data: random
blocks and repeated text, never all zeros, which would become holes) and
many small files (default 20,000 of 4 KiB in 200 directories), then times,
each against its peer on the same input:

* ``pydump -0 -f IMAGE TREE``  vs  ``tar --acls --xattrs -cf TAR -C TREE .``
* ``pyrestore -r -f IMAGE``    vs  ``/sbin/restore -r -f IMAGE`` (the same
  image, each into its own empty folder)

Everything runs warm: the tree, the image and the binaries are in the page
cache after the first pass and no caches are dropped, so the comparison is
of the software path, not of the disk.  Nothing is fsynced by either side.

Prints each figure, then::

    ratio dump 1.21          (our wall time / the peer's; the goal is < 1.5)
    ratio restore 1.34
    peak-rss-mib dump 31     (peak RSS of our process, from wait4's rusage)
    peak-rss-mib restore 45

and the peers' peak RSS for context.  The memory goal is under 1 KiB per
file plus a constant.  Medians of --runs (default 1: the tree is large).
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

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("dumptool", "tapelib", "snapfs", "snapdump", "ndmp")
RESTORE = "/sbin/restore"
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")
MIB = 1024 * 1024


def build_tree(root: Path, big_mib: int, files: int, dirs: int) -> None:
    """The big file in 1 MiB pieces, alternately random and text, then the
    small files spread evenly over ``dirs`` folders, each with its own bytes."""
    root.mkdir()
    text = (b"the quick brown fox jumps over the lazy dog, 0123456789\n" * 20000)[:MIB]
    with open(root / "big.bin", "wb") as f:
        for i in range(big_mib):
            f.write(os.urandom(MIB) if i % 2 == 0 else text)
    noise = os.urandom(4096 + files)
    per_dir = -(-files // dirs) if dirs else 0
    for n in range(files):
        d = root / f"d{n // per_dir:03d}"
        if n % per_dir == 0:
            d.mkdir()
        (d / f"f{n:05d}").write_bytes(noise[n:n + 4096])


def byte_compiled() -> None:
    """Our side's "binaries" warm: the packages byte-compiled once, as an
    installed package is (and a first run leaves them), or every run compiles
    its modules again under PYTHONDONTWRITEBYTECODE (0.1 to 0.3 s a run on
    the development VM, where it is set)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(REPO / p) for p in PACKAGES)],
                   check=True, stdout=subprocess.DEVNULL)


def run_child(argv: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command, which must succeed.

    The peak is ``ru_maxrss`` (KiB on Linux) from ``wait4`` on the command.
    A process started straight from this one inherits this one's peak as a
    floor (exec keeps the high-water mark of the image it replaces), so when
    GNU time is installed the command is started from it, a small process
    that reports the same ``wait4`` figure for its own child."""
    with tempfile.NamedTemporaryFile("r") as report:
        wrap = [GNU_TIME, "-q", "-f", "%M", "-o", report.name] if GNU_TIME else []
        start = time.perf_counter()
        child = subprocess.Popen([*wrap, *argv], cwd=cwd, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        assert child.stderr is not None
        with child.stderr:
            err = child.stderr.read().decode(errors="replace")
        if code != 0:
            raise SystemExit(f"bench: {' '.join(argv)} failed with exit {code}:\n{err}")
        peak_kib = int(report.read().split()[-1]) if GNU_TIME else usage.ru_maxrss
    return wall, peak_kib / 1024


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=512, help="size of the big file (default 512)")
    parser.add_argument("--files", type=int, default=20000, help="number of 4 KiB files (default 20000)")
    parser.add_argument("--dirs", type=int, default=200, help="folders they are spread over (default 200)")
    parser.add_argument("--runs", type=int, default=1, help="median of N runs (default 1)")
    parser.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dump-bench-", dir=args.dir))
    # the dumps' offset maps and contexts stay in the bench's folder, not /var/lib/snapdump
    os.environ["SNAPDUMP_STATE_DIR"] = str(work / "state")
    try:
        tree, image, tarball = work / "tree", work / "image.dump", work / "tree.tar"
        start = time.perf_counter()
        build_tree(tree, args.big_mib, args.files, args.dirs)
        print(f"# tree: {args.big_mib} MiB file + {args.files} x 4 KiB files in {args.dirs} folders "
              f"(built in {time.perf_counter() - start:.1f} s); warm caches, median of {args.runs} runs")
        # One untimed pass of each side so every run reads from a warm cache.
        run_child(["tar", "--acls", "--xattrs", "-cf", str(tarball), "-C", str(tree), "."])
        byte_compiled()
        figures: dict[str, list[tuple[float, float]]] = {k: [] for k in ("pd", "tar", "pr", "rr")}
        for _ in range(args.runs):
            figures["pd"].append(run_child([str(BIN / "pydump"), "-0", "--quiet", "-f", str(image), str(tree)]))
            figures["tar"].append(run_child(["tar", "--acls", "--xattrs", "-cf", str(tarball),
                                             "-C", str(tree), "."]))
            figures["pr"].append(run_child([str(BIN / "pyrestore"), "-r", "-f", str(image)],
                                           cwd=fresh(work / "out-py")))
            figures["rr"].append(run_child([RESTORE, "-r", "-f", str(image)], cwd=fresh(work / "out-linux")))
        wall = {k: statistics.median(w for w, _ in v) for k, v in figures.items()}
        rss = {k: max(r for _, r in v) for k, v in figures.items()}
        size = image.stat().st_size / MIB
        print(f"pydump -0          {wall['pd']:6.2f} s  peak {rss['pd']:6.1f} MiB  image {size:.0f} MiB")
        print(f"tar --acls --xattrs {wall['tar']:5.2f} s  peak {rss['tar']:6.1f} MiB  "
              f"archive {tarball.stat().st_size / MIB:.0f} MiB")
        print(f"pyrestore -r       {wall['pr']:6.2f} s  peak {rss['pr']:6.1f} MiB")
        print(f"restore -r (Linux) {wall['rr']:6.2f} s  peak {rss['rr']:6.1f} MiB")
        print(f"ratio dump {wall['pd'] / wall['tar']:.2f}")
        print(f"ratio restore {wall['pr'] / wall['rr']:.2f}")
        print(f"peak-rss-mib dump {rss['pd']:.0f}")
        print(f"peak-rss-mib restore {rss['pr']:.0f}")
        print(f"peak-rss-mib tar {rss['tar']:.0f}")
        print(f"peak-rss-mib linux-restore {rss['rr']:.0f}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
