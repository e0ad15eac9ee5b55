#!/usr/bin/env python3
"""Restartable dumps, a long seeded loop: kill a dump of a snapfs volume in stage IV, restart it, compare.

Builds a tree of random files (some big, some empty, some with holes) in a
mounted snapfs volume, takes snapshot ``ref``, dumps it once uninterrupted,
then ``--rounds`` times: ``pydump --snapshot ref -f vol001`` killed (SIGTERM
or SIGKILL, after a random inode of stage IV, with checkpoints every inode or
every few milliseconds), sometimes its restart killed too, then restarted
until done; the volumes joined (each later one without its header) must be
the uninterrupted image (its last record aside), and ``pyrestore -r -M``
(every round) and the real ``restore -r -b N -M`` (every ``--real-every``
rounds) must give the snapshot's tree.  Prints one line per round and
``ok N rounds`` at the end; exit 1 at the first round that fails, naming its
seed.  The short version runs in tests/snapfs/test_fuse_restartable.py.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
NTREC = 10


def run(*cmd, env=None, cwd=None, ok=True) -> subprocess.CompletedProcess:
    r = subprocess.run([*map(str, cmd)], capture_output=True, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                       timeout=600)
    if ok and r.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return r


def build(root: Path, rng: random.Random, files: int) -> None:
    for i in range(files):
        d = root / f"d{i % 7}" / f"s{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        size = rng.choice([0, 1, 1023, 1024, 5000, 40000, 300000, 2_000_000])
        with open(d / f"f{i}", "wb") as f:
            if size > 100000 and rng.random() < 0.3:
                f.write(rng.randbytes(4096))
                f.seek(size - 4096)
            f.write(rng.randbytes(min(size, 4096) if size > 100000 and f.tell() else size))


def same(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=["restoresymtable"])
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    return all(same(a / d, b / d) for d in cmp.common_dirs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--real-every", type=int, default=5)
    parser.add_argument("--dir", default="/dev/shm")
    args = parser.parse_args()
    from snapfs import Volume

    work = Path(tempfile.mkdtemp(prefix="restart-kills-", dir=args.dir))
    vol, mnt = work / "vol", work / "mnt"
    rng = random.Random(args.seed)
    try:
        Volume.create(vol, 1 << 30, args.files + 2000, name="bench", block_size=4096).close()
        mnt.mkdir()
        run(BIN / "snapfs", "mount", vol, mnt)
        build(mnt, rng, args.files)
        run(BIN / "snapfs", "snapshot", "create", mnt, "ref")
        whole = work / "whole.dump"
        base = dict(os.environ, SNAPDUMP_STATE_DIR=str(work / "state"))
        run(BIN / "pydump", "-0", "-b", NTREC, "--snapshot", "ref", "-f", whole, mnt, env=base)
        image = whole.read_bytes()
        nfiles = args.files
        for n in range(args.rounds):
            seed = rng.randrange(1 << 30)
            r = random.Random(seed)
            out = work / f"r{n}"
            out.mkdir()
            env = dict(base, SNAPDUMP_CHECKPOINT_SECONDS=r.choice(["0", "0.005", "0.05"]))
            sig = r.choice(["SIGTERM", "SIGKILL"])
            at = r.randrange(1, nfiles)
            run(BIN / "pydump", "-0", "-b", NTREC, "--snapshot", "ref", "-f", out / "vol001", mnt, ok=False,
                env=dict(env, SNAPDUMP_TEST_SIGNAL_AT=f"{at}:{sig}"))
            [cid] = [p.stem for p in (work / "state" / "contexts").glob("*.json")]
            while True:
                ctx = json.loads((work / "state" / "contexts" / f"{cid}.json").read_text())
                volume = ctx["checkpoint"]["volume"]
                for stale in out.glob("vol0*"):
                    if int(stale.name[3:]) > volume:
                        stale.unlink()
                nxt = out / f"vol{volume + 1:03d}"
                done = ctx["checkpoint"]["index"]  # 29 directories come first (root, d*, d*/s*)
                if r.random() < 0.3 and done + 10 < nfiles:
                    res = run(BIN / "pydump", "--restart", cid, "-f", nxt, ok=False,
                              env=dict(env, SNAPDUMP_TEST_SIGNAL_AT=f"{done - 29 + r.randrange(5, 40)}:SIGKILL"))
                    if res.returncode == 0:
                        break
                    continue
                run(BIN / "pydump", "--restart", cid, "-f", nxt, env=env)
                break
            volumes = [p.read_bytes() for p in sorted(out.glob("vol0*"))]
            joined = volumes[0] + b"".join(v[1024:] for v in volumes[1:])
            cut = len(image) - NTREC * 1024
            if joined[:cut] != image[:cut]:
                print(f"round {n} (seed {seed}): the joined volumes differ from the uninterrupted image")
                return 1
            for real in ([False, True] if n % args.real_every == 0 else [False]):
                dest = out / ("real" if real else "py")
                dest.mkdir()
                cmd = ["/sbin/restore", "-r", "-y", "-b", str(NTREC)] if real else [BIN / "pyrestore", "-r", "-y"]
                run(*cmd, "-M", "-f", out / "vol", cwd=dest, env=dict(os.environ, TMPDIR=str(out)))
                if not same(mnt / ".snapshot" / "ref", dest):
                    print(f"round {n} (seed {seed}): {'restore' if real else 'pyrestore'} gives another tree")
                    return 1
            print(f"round {n}: {sig} after inode {at}, {len(volumes)} volumes: ok", flush=True)
            shutil.rmtree(out)
        print(f"ok {args.rounds} rounds")
        return 0
    finally:
        subprocess.run([str(BIN / "snapfs"), "unmount", str(mnt)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
