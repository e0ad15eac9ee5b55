"""readdir through the mount: '.' and '..' with their inode numbers, complete and stable listings."""

from __future__ import annotations

import ctypes
import os
import struct
import subprocess
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, mounted, snapfs  # noqa: F401 (fixtures)

pytestmark = pytest.mark.fuse
_libc = ctypes.CDLL(None, use_errno=True)
_libc.getdents64.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
_libc.getdents64.restype = ctypes.c_ssize_t
_DIRENT64 = struct.Struct("QqHB")  # d_ino, d_off, d_reclen, d_type; then the name


def getdents(fd: int, bufsize: int) -> list[tuple[bytes, int]]:
    """One getdents64 call on ``fd``: (name, d_ino) of each entry, [] at the end."""
    buf = ctypes.create_string_buffer(bufsize)
    n = _libc.getdents64(fd, buf, bufsize)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    out, raw, pos = [], buf.raw[:n], 0
    while pos < n:
        d_ino, _, reclen, _ = _DIRENT64.unpack_from(raw, pos)
        name = raw[pos + _DIRENT64.size:pos + reclen].split(b"\0", 1)[0]
        out.append((name, d_ino))
        pos += reclen
    return out


def listing(path: Path, bufsize: int = 32768) -> list[tuple[bytes, int]]:
    """Every (name, d_ino) of ``path``, read with getdents64 buffers of ``bufsize`` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        out = []
        while batch := getdents(fd, bufsize):
            out += batch
        return out
    finally:
        os.close(fd)


def ls_a(path: Path) -> list[str]:
    return subprocess.run(["ls", "-a", "-1", str(path)], capture_output=True, text=True, check=True).stdout.split()


def dots(path: Path, bufsize: int = 32768) -> dict[bytes, int]:
    return {n: i for n, i in listing(path, bufsize) if n in (b".", b"..")}


def test_ls_a_shows_dot_and_dotdot_but_not_snapshot_dir(mounted: Mounted):
    m = mounted.mnt
    (m / "d").mkdir()
    (m / "d" / "f").write_bytes(b"")
    assert ls_a(m) == [".", "..", "d"]
    assert ls_a(m / "d") == [".", "..", "f"]
    found = subprocess.run(["find", str(m / "d"), "-maxdepth", "1"], capture_output=True, text=True, check=True)
    assert sorted(found.stdout.split()) == [str(m / "d"), str(m / "d" / "f")]


def test_dot_and_dotdot_carry_the_inode_numbers_of_the_dir_and_its_parent(mounted: Mounted):
    m = mounted.mnt
    (m / "a" / "b").mkdir(parents=True)
    ino = {p: os.stat(p).st_ino for p in (m, m / "a", m / "a" / "b")}
    assert dots(m) == {b".": ino[m], b"..": ino[m]}  # the root is its own parent
    assert dots(m / "a") == {b".": ino[m / "a"], b"..": ino[m]}
    assert dots(m / "a" / "b") == {b".": ino[m / "a" / "b"], b"..": ino[m / "a"]}


def test_snapshot_dirs_list_dots_with_their_parents(mounted: Mounted):
    m = mounted.mnt
    (m / "d").mkdir()
    snapfs("snapshot", "create", m, "S")
    snapdir, root, d = m / ".snapshot", mounted.snap("S"), mounted.snap("S") / "d"
    assert ls_a(snapdir) == [".", "..", "S"]
    assert ls_a(root) == [".", "..", "d"]
    ino = {p: os.stat(p).st_ino for p in (m, snapdir, root, d)}
    assert dots(snapdir) == {b".": ino[snapdir], b"..": ino[m]}
    assert dots(root) == {b".": ino[root], b"..": ino[snapdir]}
    assert dots(d) == {b".": ino[d], b"..": ino[root]}


def test_listing_in_one_entry_batches_resumes_after_dot_and_dotdot(mounted: Mounted):
    m = mounted.mnt
    for name in ("x", "y", "z"):
        (m / name).write_bytes(b"")
    snapfs("snapshot", "create", m, "one")
    snapfs("snapshot", "create", m, "two")
    for path in (m, m / ".snapshot", mounted.snap("one")):
        whole = listing(path)
        assert listing(path, bufsize=40) == whole  # 40 bytes hold one short entry: a READDIR per offset
    assert [n for n, _ in listing(m / ".snapshot", 40)] == [b".", b"..", b"one", b"two"]


def test_two_thousand_entries_list_every_name_once(mounted: Mounted):
    d = mounted.mnt / "many"
    d.mkdir()
    (d / "f0000").write_bytes(b"")
    for i in range(1, 2000):  # hard links: 2,000 entries within the fixture's 1,000 inodes
        os.link(d / "f0000", d / f"f{i:04d}")
    names = [f"f{i:04d}" for i in range(2000)]
    assert ls_a(d) == [".", ".."] + names
    assert sorted(n for n, _ in listing(d, bufsize=1024)) == [b".", b".."] + [n.encode() for n in names]


def test_listing_stays_exact_while_the_directory_changes(mounted: Mounted):
    d = mounted.mnt / "busy"
    d.mkdir()
    for i in range(300):
        (d / f"old{i:03d}").write_bytes(b"")
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        seen = getdents(fd, 2048)
        for i in range(0, 300, 2):
            name = f"old{i:03d}"
            if name.encode() not in {n for n, _ in seen}:
                os.unlink(d / name)
        for i in range(100):
            (d / f"new{i:03d}").write_bytes(b"")
        while batch := getdents(fd, 2048):
            seen += batch
    finally:
        os.close(fd)
    names = [n for n, _ in seen]
    assert len(names) == len(set(names))
    assert names[:2] == [b".", b".."]
    kept = {f"old{i:03d}".encode() for i in range(1, 300, 2)}
    assert kept <= set(names)
