"""fsx-style: seeded random operations on a real mount and on a plain directory.

The same operation goes to the snapfs mount and to a model directory on the
test's own file system; both must succeed or fail with the same errno, and
every few steps the two trees must hold the same names, types, modes, link
counts, hard-link groups, sizes, bytes, symlink targets and user xattrs.
Along the way snapshots are taken (the model's state is recorded then) and
each one must keep showing exactly that state under ``.snapshot/NAME/`` until
it is deleted, across later changes, remounts and a clean ``snapfs fsck``.

FSX_SEED and FSX_STEPS in the environment replay or lengthen a run.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import random
from pathlib import Path

import pytest
from fuse_fixtures import drop_kernel_caches, mounted, snapfs  # noqa: F401 (fixtures)

from snapfs import client

pytestmark = pytest.mark.fuse

SEED = int(os.environ.get("FSX_SEED", "20261125"))
STEPS = int(os.environ.get("FSX_STEPS", "400"))
COMPARE_EVERY = 4
#: Both trees start with these directories; files go into them, directories come and go beside them.
DIRS = ["d0", "d1", "d0/e"]
FILE_NAMES = ["f0", "f1", "f2", "f3"]
DIR_NAMES = ["d0", "d1", "e", "g"]
XATTRS = ["user.a", "user.b"]
MAX_OFFSET = 160 * 1024
MAX_WRITE = 70 * 1024
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(old: str | Path, new: str | Path, flags: int) -> None:
    if _libc.renameat2(-100, os.fsencode(old), -100, os.fsencode(new), flags) != 0:  # AT_FDCWD
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(old))


# rename over a non-empty directory: ENOTEMPTY or EEXIST, as POSIX allows
_SAME_ERRNO = {errno.EEXIST: errno.ENOTEMPTY}


def state(root: Path, forget: bool = False) -> dict[str, tuple]:
    """Everything compared, by path relative to ``root`` (times are not: they differ).

    ``forget``: have the kernel drop its cached inodes after the first directory,
    so hard links on either side of it are looked up afresh (and must still share
    an ``st_ino``)."""
    found: dict[str, tuple] = {}
    inodes: dict[int, list[str]] = {}

    def fail(e: OSError) -> None:
        raise e

    for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
        if forget and dirpath != str(root):
            forget = not drop_kernel_caches(page_cache=False)
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            kind = st.st_mode & 0o170000
            if os.path.islink(full):
                found[rel] = ("l", os.readlink(full))
                continue
            xattrs = tuple(sorted((x, os.getxattr(full, x)) for x in os.listxattr(full)
                                  if x.startswith("user.") and not x.startswith("user.snapfs.")))
            if os.path.isdir(full):
                found[rel] = ("d", st.st_mode & 0o7777, st.st_nlink, xattrs)
            else:
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                found[rel] = (kind, st.st_mode & 0o7777, st.st_nlink, st.st_size, digest, xattrs)
                inodes.setdefault(st.st_ino, []).append(rel)
    for names in inodes.values():
        for rel in names:
            found[rel] += (tuple(sorted(names)),)
    return found


def differences(got: dict[str, tuple], want: dict[str, tuple]) -> str:
    """The entries that differ, each with the fields that do (for a failure message)."""
    out = []
    for rel in sorted(got.keys() | want.keys()):
        g, w = got.get(rel), want.get(rel)
        if g == w:
            continue
        if g is None or w is None or len(g) != len(w):
            out.append(f"{rel}: snapfs {g!r:.200} vs model {w!r:.200}")
        else:
            fields = [f"field {i}: {a!r:.120} vs {b!r:.120}" for i, (a, b) in enumerate(zip(g, w)) if a != b]
            out.append(f"{rel}: " + "; ".join(fields))
    return " | ".join(out[:8])


def random_op(rng: random.Random) -> tuple:
    def path() -> str:
        return os.path.join(rng.choice(["", *DIRS]), rng.choice(FILE_NAMES))

    def dpath() -> str:
        return os.path.join(rng.choice(["", *DIRS]), rng.choice(DIR_NAMES))

    kind = rng.choices(["write", "truncate", "rename", "unlink", "mkdir", "rmdir", "chmod", "setxattr",
                        "removexattr", "link", "symlink", "rewrite"],
                       weights=[30, 8, 8, 6, 5, 3, 4, 5, 2, 5, 2, 4])[0]
    if kind == "rewrite":  # open with O_TRUNC (as shell redirection and cp do), then write
        return kind, path(), rng.randrange(MAX_WRITE), rng.randrange(1 << 30)
    if kind == "write":
        return kind, path(), rng.randrange(MAX_OFFSET), rng.randrange(1, MAX_WRITE), rng.randrange(1 << 30)
    if kind == "truncate":
        return kind, path(), rng.choice([0, rng.randrange(MAX_OFFSET + MAX_WRITE)])
    if kind == "rename":  # renameat2 flags: none, RENAME_NOREPLACE or RENAME_EXCHANGE
        flags = rng.choice([0, 0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE])
        if rng.random() < 0.25:
            return kind, dpath(), dpath(), flags
        return kind, path(), path(), flags
    if kind == "link":
        return kind, path(), path()
    if kind in ("mkdir", "rmdir"):
        return kind, dpath()
    if kind == "chmod":
        return kind, path(), rng.choice([0o644, 0o600, 0o755, 0o4755, 0o1777, 0o000])
    if kind == "setxattr":
        return kind, path(), rng.choice(XATTRS), rng.randbytes(rng.randrange(0, 200))
    if kind == "removexattr":
        return kind, path(), rng.choice(XATTRS)
    if kind == "symlink":
        return kind, rng.choice(["f0", "../f1", "d0/e", "missing"]), path()
    return kind, path()


def apply(root: Path, op: tuple) -> int:
    """Do ``op`` under ``root``; 0 or the errno it failed with."""
    kind, *args = op
    p = str(root / args[0])
    try:
        if kind == "write":
            _, offset, length, seed = args
            data = random.Random(seed).randbytes(length)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, data, offset)
            finally:
                os.close(fd)
        elif kind == "rewrite":
            _, length, seed = args
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, random.Random(seed).randbytes(length))
            finally:
                os.close(fd)
        elif kind == "truncate":
            os.truncate(p, args[1])
        elif kind == "rename":
            renameat2(p, root / args[1], args[2])
        elif kind == "unlink":
            os.unlink(p)
        elif kind == "mkdir":
            os.mkdir(p)
        elif kind == "rmdir":
            os.rmdir(p)
        elif kind == "chmod":
            os.chmod(p, args[1])
        elif kind == "setxattr":
            os.setxattr(p, args[1], args[2])
        elif kind == "removexattr":
            os.removexattr(p, args[1])
        elif kind == "link":
            os.link(p, root / args[1], follow_symlinks=False)
        elif kind == "symlink":
            os.symlink(args[0], root / args[1])
    except OSError as e:
        return _SAME_ERRNO.get(e.errno, e.errno)
    return 0


def test_random_operations_match_a_plain_directory_across_snapshots_remounts_and_fsck(mounted, tmp_path):
    rng = random.Random(SEED)
    mnt, model = mounted.mnt, tmp_path / "model"
    model.mkdir()
    for d in DIRS:
        os.mkdir(mnt / d)
        os.mkdir(model / d)
    taken: dict[str, dict] = {}  # snapshot name -> the model's state when it was taken
    history: list[tuple] = []

    def check(where: str, snapshots: bool = True) -> None:
        got, want = state(mnt), state(model)
        assert got == want, f"seed {SEED}, {where}, last ops {history[-5:]}: {differences(got, want)}"
        for name, expected in taken.items() if snapshots else ():
            got = state(mnt / ".snapshot" / name, forget=True)
            assert got == expected, f"seed {SEED}, snapshot {name} changed ({where}): {differences(got, expected)}"

    def remount(fsck: bool) -> None:
        snapfs("unmount", mnt)
        if fsck:
            r = snapfs("fsck", mounted.voldir)
            assert r.stdout.strip().endswith("clean"), r.stdout
        snapfs("mount", mounted.voldir, mnt, "-o", "allow_other")

    counter = succeeded = 0
    for step in range(1, STEPS + 1):
        op = random_op(rng)
        history.append(op)
        got, want = apply(mnt, op), apply(model, op)
        assert got == want, f"seed {SEED} step {step}: {op} gave errno {got} on snapfs, {want} on the model"
        succeeded += got == 0
        if step % COMPARE_EVERY == 0:
            check(f"step {step}", snapshots=step % (5 * COMPARE_EVERY) == 0)
        event = rng.random()
        if event < 0.035:
            name = f"s{counter}"
            counter += 1
            with client.open_volume(mnt) as c:
                c.snapshot_create(name)
            taken[name] = state(model)
        elif event < 0.06 and taken:
            name = rng.choice(sorted(taken))
            snapfs("snapshot", "delete", mnt, name)
            del taken[name]
            assert not (mnt / ".snapshot" / name).exists()
        elif event < 0.075:
            remount(fsck=rng.random() < 0.5)
            check(f"after a remount at step {step}")
    check("the end")
    assert counter >= 3, "too few snapshots for the test to mean anything"
    assert succeeded > STEPS // 2, "most operations failed: the generator lost its tree"
    remount(fsck=True)
    check("after the final fsck")
