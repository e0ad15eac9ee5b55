"""`make demo`: the main job end to end on the embedded default.

A shelf with two cartridges, a sample tree, two archives written by real GNU
tar through `pyrmt` onto a loopback drive as two tape files, `pymt status`,
then `pymt fsf 1` and real tar reading the second archive back, verified
byte for byte.  Everything lives under ./demo-work (made afresh each run).
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "demo-work"
BIN = Path(sys.executable).parent


def run(*argv: str | Path, show: bool = True) -> str:
    """Run a command, echo it like a shell transcript, stop the demo on failure."""
    args = [str(a) for a in argv]
    if show:
        shown = (a.replace(str(WORK) + "/", "").replace(str(BIN) + "/", "") for a in args)
        print("$ " + " ".join(shown), flush=True)
    done = subprocess.run(args, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.stdout and show:
        print(done.stdout.rstrip())
    if done.returncode != 0:
        print(done.stdout, file=sys.stderr)
        raise SystemExit(f"demo: {args[0]} failed with exit {done.returncode}")
    return done.stdout


def make_tree(root: Path, flavour: str) -> None:
    """A small tree with text, binary, empty and nested files and a symlink."""
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text(f"{flavour}: hello from the demo\n" * 50)
    (root / "docs" / "deep" / "er" / "blob.bin").write_bytes(os.urandom(300_000))
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("docs/readme.txt")


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    shelf = WORK / "shelf"
    nst0 = shelf / "nst0"
    rsh = WORK / "rsh-local"
    # A stand-in for rsh/ssh: ignore the host (and -l user) and run the rmt
    # command here, so tar's remote-tape path is exercised for real.
    rsh.write_text('#!/bin/sh\nshift\n[ "$1" = "-l" ] && shift 2\nexec "$@"\n')
    rsh.chmod(0o755)
    tar_remote = [f"--rsh-command={rsh}", f"--rmt-command={BIN / 'pyrmt'}"]

    print("== a shelf with one drive and two cartridges")
    run(BIN / "pytape", "create", shelf, "--drives", "1", "--slots", "4")
    run(BIN / "pytape", "new", shelf, "DEMO01", "--capacity", "256M")
    run(BIN / "pytape", "new", shelf, "DEMO02", "--capacity", "256M")
    run(BIN / "pytape", "load", shelf, "DEMO01")

    print("\n== two archives written by GNU tar through pyrmt, as tape files 0 and 1")
    make_tree(WORK / "tree-a", "first")
    make_tree(WORK / "tree-b", "second")
    for tree in ("tree-a", "tree-b"):
        run("tar", *tar_remote, "-cf", f"localhost:{nst0}", "-C", WORK / tree, ".")
    run(BIN / "pymt", "-f", nst0, "status")

    print("\n== position at file 1 and read the second archive back")
    run(BIN / "pymt", "-f", nst0, "rewind")
    run(BIN / "pymt", "-f", nst0, "fsf", "1")
    out = WORK / "restored"
    out.mkdir()
    run("tar", *tar_remote, "-xf", f"localhost:{nst0}", "-C", out)
    run(BIN / "pymt", "-f", nst0, "status")
    run(BIN / "pytape", "status", shelf)
    if not same_tree(WORK / "tree-b", out):
        raise SystemExit("demo: the restored tree differs from tree-b")
    print("\ndemo: OK - the second tape file restored byte-identical to tree-b")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
