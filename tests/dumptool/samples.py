"""Samples the dumptool tests share: source trees, ext4 volumes on loop
devices, shelf cartridges read back, and the real Linux dump/restore.

Imported by the tests as ``samples`` (this directory is on ``sys.path`` when
pytest imports a test module beside it; ``format/`` puts it there itself).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tapelib import Shelf, TapeIOError, open_device

DUMP = "/sbin/dump"
RESTORE = "/sbin/restore"

#: The tests that make ext4 loop images and dump them with the real dump.
needs_real_dump = pytest.mark.skipif(
    not (os.geteuid() == 0 and os.access(DUMP, os.X_OK) and os.access(RESTORE, os.X_OK)
         and shutil.which("losetup") and shutil.which("mke2fs") and shutil.which("setfacl")),
    reason="needs root, /sbin/dump, /sbin/restore, losetup, mke2fs and setfacl")
#: The times the sample trees are stamped with.
DATE = 1_700_000_000


# -- trees -------------------------------------------------------------------------------------


def plant_common_files(root: Path, *, sparse_size: int = 2 * 1024 * 1024, link_dir: str = "dir2") -> None:
    """What every sample tree holds: nested directories, a small, an empty and
    a file longer than 512 blocks, a sparse file with 3 bytes of data at 1 MiB,
    a short and a long symbolic link, a hard link (in *link_dir*) and a fifo."""
    (root / "dir1" / "sub").mkdir(parents=True)
    (root / link_dir).mkdir(exist_ok=True)
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "empty").write_bytes(b"")
    (root / "dir1" / "big.bin").write_bytes(bytes((i * 7) % 251 for i in range(614_500)))
    (root / "dir1" / "sub" / "file").write_bytes(b"sub\n")
    with open(root / "sparse", "wb") as f:
        f.truncate(sparse_size)
        f.seek(1024 * 1024)
        f.write(b"MID")
    os.symlink("hello.txt", root / "shortlink")
    os.symlink("a" * 70 + "/target", root / "longlink")
    os.link(root / "hello.txt", root / link_dir / "hardlink")
    os.mkfifo(root / "fifo")


def stamp_times(root: Path) -> None:
    """Give every node under *root* its own atime and a sub-second mtime (a
    day before :data:`DATE`), and *root* itself DATE."""
    for n, p in enumerate(sorted(root.rglob("*"))):
        os.utime(p, ns=(DATE * 10**9 + n * 1000, (DATE - 86400) * 10**9 + n * 123_456_000), follow_symlinks=False)
    os.utime(root, ns=(DATE * 10**9, DATE * 10**9 + 5_000))


def xattrs(path: Path) -> dict[str, bytes]:
    """The extended attributes of *path* itself (not a link's target)."""
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in os.listxattr(path, follow_symlinks=False)}


# -- ext4 volumes and the real tools ------------------------------------------------------------


def mkfs(src: Path, image: Path, size: str = "16M", *, inode_size: int | None = None) -> None:
    """An ext4 image file holding a copy of *src* (``mke2fs -d``)."""
    extra = ["-I", str(inode_size)] if inode_size else []
    subprocess.run(["mke2fs", "-q", "-t", "ext4", *extra, "-d", str(src), str(image), size], check=True)


class Loop:
    """An ext4 image attached to a loop device (and mounted on demand)."""

    def __init__(self, image: Path) -> None:
        self.image = image
        self.dev = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True,
                                  text=True, check=True).stdout.strip()
        self.mnt: Path | None = None

    def mount(self, mnt: Path) -> Path:
        mnt.mkdir(exist_ok=True)
        subprocess.run(["mount", self.dev, str(mnt)], check=True)
        self.mnt = mnt
        return mnt

    def umount(self) -> None:
        if self.mnt is not None:
            subprocess.run(["umount", str(self.mnt)], check=True)
            self.mnt = None

    def dump(self, level: int, out: Path, *extra: str) -> Path:
        """The real dump of this volume at *level* to *out* (``extra`` flags before ``-f``)."""
        done = subprocess.run([DUMP, f"-{level}", *extra, "-f", str(out), self.dev],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        return out

    def close(self) -> None:
        self.umount()
        subprocess.run(["losetup", "-d", self.dev], check=True)


@contextlib.contextmanager
def ext4_volume(src: Path, image: Path, size: str = "16M", *, inode_size: int | None = None) -> Iterator[Loop]:
    """*src* copied to a new ext4 *image* on a loop device, detached on the way out."""
    mkfs(src, image, size, inode_size=inode_size)
    loop = Loop(image)
    try:
        yield loop
    finally:
        loop.close()


def real_dump_of(src: Path, workdir: Path, *extra: str, size: str = "16M",
                 inode_size: int | None = None, name: str = "real.dump") -> Path:
    """The real level-0 dump (to ``workdir/name``) of an ext4 copy of *src*."""
    with ext4_volume(src, workdir / f"{name}.fs", size, inode_size=inode_size) as loop:
        return loop.dump(0, workdir / name, *extra)


def real_restore(*args: str, cwd: Path, tmp: Path, check: bool = True, timeout: int = 300
                 ) -> subprocess.CompletedProcess:
    """The real restore, with a TMPDIR of its own under *tmp* (its rstdir<date> names are fixed)."""
    scratch = tmp / f"rtmp-{time.monotonic_ns()}"
    scratch.mkdir()
    result = subprocess.run([RESTORE, *args], cwd=cwd, env=dict(os.environ, TMPDIR=str(scratch)),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def listing(out: str) -> dict[str, int]:
    """``./path -> inode`` from a ``restore -t`` listing."""
    found = {}
    for line in out.splitlines():
        num, sep, name = line.strip().partition("\t")
        if sep and num.isdigit():
            found[name] = int(num)
    return found


def fake_rsh(tmp_path: Path, rmt: str) -> Path:
    """An ``RSH`` for dump/restore's ``host:device`` that runs *rmt* locally."""
    rsh = tmp_path / "fake-rsh"
    rsh.write_text("#!/bin/sh\nshift\n"
                   'if [ "$1" = "-l" ]; then shift 2; fi\n'
                   f'exec "{rmt}"\n')
    rsh.chmod(0o755)
    return rsh


# -- cartridges ----------------------------------------------------------------------------------


def record_sizes(device: str, largest: int) -> list[int]:
    """The lengths of the records of a drive's first tape file, read asking
    for ``largest`` bytes each; the tape is left rewound."""
    with open_device(device) as tape:
        tape.rewind()
        sizes = []
        while record := tape.read(largest):
            sizes.append(len(record))
        tape.rewind()
    return sizes


def tape_copy(device: str, file_number: int = 0) -> bytes:
    """The records of one tape file of a shelf drive, read back through tapelib."""
    out = bytearray()
    with open_device(device) as tape:
        tape.rewind()
        if file_number:
            tape.space_files(file_number)
        while True:
            try:
                record = tape.read(256 * 1024)
            except TapeIOError:  # a full cartridge ends without a filemark
                break
            if not record:
                break
            out += record
    return bytes(out)


def restore_both_cartridges(shelf: Shelf, nst0: str, tmp_path: Path, first: str = "TEST01") -> Path:
    """A dump that went on from cartridge ``first`` to the one now in drive 0,
    copied to ``vol001``/``vol002`` and rebuilt by the real ``restore -r -M``
    in ``tmp_path/out`` (returned)."""
    (tmp_path / "vol002").write_bytes(tape_copy(nst0))
    shelf.unload(0)
    shelf.load(first, 0)
    (tmp_path / "vol001").write_bytes(tape_copy(nst0))
    out = tmp_path / "out"
    out.mkdir()
    real_restore("-r", "-y", "-M", "-f", str(tmp_path / "vol"), cwd=out, tmp=tmp_path)
    return out
