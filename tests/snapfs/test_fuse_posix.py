"""POSIX behaviour through a real mount, with ordinary syscalls and tools."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import subprocess

import pytest
from fuse_fixtures import Mounted, mounted, small_mount, snapfs  # noqa: F401 (fixtures)

pytestmark = pytest.mark.fuse
_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100


def renameat2(old, new, flags: int) -> None:
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def errno_of(fn, *a) -> int:
    with pytest.raises(OSError) as ei:
        fn(*a)
    return ei.value.errno


def test_files_dirs_and_stable_inode_numbers(mounted: Mounted):
    m = mounted.mnt
    (m / "d").mkdir()
    (m / "d" / "f").write_bytes(b"hello")
    assert (m / "d" / "f").read_bytes() == b"hello"
    st = os.stat(m / "d" / "f")
    assert int(os.getxattr(m / "d" / "f", "user.snapfs.ino")) == st.st_ino
    assert sorted(os.listdir(m)) == ["d"]
    assert os.stat(m / "d").st_nlink == 2
    (m / "d" / "e").mkdir()
    assert os.stat(m / "d").st_nlink == 3
    assert errno_of(os.rmdir, m / "d") == errno.ENOTEMPTY
    assert errno_of(os.mkdir, m / "d") == errno.EEXIST
    assert errno_of(os.unlink, m / "d") == errno.EISDIR


def test_many_entries_list_completely(mounted: Mounted):
    d = mounted.mnt / "many"
    d.mkdir()
    for i in range(600):
        (d / f"f{i:04d}").write_bytes(b"")
    assert sorted(os.listdir(d)) == [f"f{i:04d}" for i in range(600)]


def test_hard_links_share_inode_and_count(mounted: Mounted):
    m = mounted.mnt
    (m / "a").write_bytes(b"x")
    os.link(m / "a", m / "b")
    assert os.stat(m / "a").st_ino == os.stat(m / "b").st_ino
    assert os.stat(m / "a").st_nlink == 2
    os.unlink(m / "a")
    assert os.stat(m / "b").st_nlink == 1
    assert (m / "b").read_bytes() == b"x"
    (m / "dir").mkdir()
    assert errno_of(os.link, m / "dir", m / "dir2") == errno.EPERM


def test_symlinks_devices_fifos_sockets(mounted: Mounted):
    m = mounted.mnt
    os.symlink("target/../x", m / "l")
    assert os.readlink(m / "l") == "target/../x"
    assert stat.S_ISLNK(os.lstat(m / "l").st_mode)
    os.mknod(m / "c", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mknod(m / "b", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    os.mkfifo(m / "p")
    os.mknod(m / "s", stat.S_IFSOCK | 0o600)
    assert os.stat(m / "c").st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.stat(m / "b").st_mode) and os.stat(m / "b").st_rdev == os.makedev(7, 0)
    assert stat.S_ISFIFO(os.stat(m / "p").st_mode)
    assert stat.S_ISSOCK(os.stat(m / "s").st_mode)


def test_rename_edge_cases(mounted: Mounted):
    m = mounted.mnt
    (m / "a").write_bytes(b"A")
    (m / "b").write_bytes(b"B")
    os.rename(m / "a", m / "b")
    assert (m / "b").read_bytes() == b"A" and not (m / "a").exists()
    (m / "d1").mkdir()
    (m / "d2").mkdir()
    os.rename(m / "d1", m / "d2")  # over an empty dir
    assert not (m / "d1").exists()
    (m / "d3").mkdir()
    (m / "d2" / "x").write_bytes(b"")
    assert errno_of(os.rename, m / "d3", m / "d2") == errno.ENOTEMPTY
    assert errno_of(os.rename, m / "d3", m / "b") == errno.ENOTDIR
    assert errno_of(os.rename, m / "b", m / "d3") == errno.EISDIR
    assert errno_of(os.rename, m / "d2", m / "d2" / "sub") == errno.EINVAL
    (m / "c").write_bytes(b"C")
    assert errno_of(renameat2, m / "b", m / "c", 1) == errno.EEXIST  # RENAME_NOREPLACE
    renameat2(m / "b", m / "c", 2)  # RENAME_EXCHANGE
    assert (m / "b").read_bytes() == b"C" and (m / "c").read_bytes() == b"A"
    os.rename(m / "c", m / "d3" / "moved")
    assert (m / "d3" / "moved").read_bytes() == b"A"


def test_truncate_and_sparse_files(mounted: Mounted):
    f = mounted.mnt / "sparse"
    with open(f, "wb") as fh:
        fh.seek(10 * 1024 * 1024)
        fh.write(b"end")
    st = os.stat(f)
    assert st.st_size == 10 * 1024 * 1024 + 3
    assert st.st_blocks * 512 <= 8192  # the hole takes no space
    with open(f, "rb") as fh:
        fh.seek(5 * 1024 * 1024)
        assert fh.read(4096) == bytes(4096)
    os.truncate(f, 100)
    assert f.read_bytes() == bytes(100)
    g = mounted.mnt / "g"
    g.write_bytes(b"abcdefgh" * 1000)
    os.truncate(g, 5)
    os.truncate(g, 10)
    assert g.read_bytes() == b"abcde" + bytes(5)


def test_chmod_chown_utimens_with_nanoseconds(mounted: Mounted):
    f = mounted.mnt / "f"
    f.write_bytes(b"")
    os.chmod(f, 0o4751)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o4751
    os.chown(f, 1234, 5678)
    st = os.stat(f)
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    os.utime(f, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(f)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456)


def test_o_append_writes_at_end(mounted: Mounted):
    f = mounted.mnt / "log"
    f.write_bytes(b"one\n")
    fd = os.open(f, os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"two\n")
    os.fsync(fd)
    os.close(fd)
    with open(f, "a") as fh:
        fh.write("three\n")
    assert f.read_bytes() == b"one\ntwo\nthree\n"


def _resident_pages(fd: int, length: int) -> tuple[int, bytes]:
    """How many pages of the first ``length`` bytes of open file ``fd`` the page cache
    holds (mincore over a fresh shared mapping, which reads nothing), and the bytes
    read through that mapping afterwards."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    addr = libc.mmap(None, length, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
    assert addr not in (None, ctypes.c_void_p(-1).value)
    try:
        vec = ctypes.create_string_buffer(-(-length // 4096))
        assert libc.mincore(addr, length, vec) == 0, os.strerror(ctypes.get_errno())
        return sum(v & 1 for v in vec.raw), ctypes.string_at(addr, length)
    finally:
        libc.munmap(addr, length)


def test_a_write_only_open_skips_the_page_cache_and_readers_see_its_bytes(mounted: Mounted):
    """A write-only open writes straight from the writer's pages to the daemon (direct
    I/O: the mount's page cache never gets the bytes, so a sequential write costs one copy
    less); what readers hold (an open file, a mapping) still shows the new bytes."""
    big = mounted.mnt / "big"
    fd = os.open(big, os.O_WRONLY | os.O_CREAT, 0o644)  # (made by CREATE)
    os.write(fd, b"x" * (1 << 20))
    os.close(fd)
    r = os.open(big, os.O_RDONLY)
    try:
        assert _resident_pages(r, 1 << 20) == (0, b"x" * (1 << 20))
        assert os.pread(r, 8192, 0) == b"x" * 8192  # now cached
        fd = os.open(big, os.O_WRONLY)  # (made by OPEN)
        os.pwrite(fd, b"B" * 100, 0)
        os.pwrite(fd, b"C" * 8192, 8192)
        os.close(fd)
        resident, data = _resident_pages(r, 3 * 4096)
        assert data == b"B" * 100 + b"x" * 8092 + b"C" * 4096
        assert resident <= 2  # (the third page, which no read brought in, was never cached)
        assert os.pread(r, 4, 0) == b"BBBB" and big.read_bytes()[:101] == b"B" * 100 + b"x"
    finally:
        os.close(r)


def test_o_trunc_empties_an_existing_file(mounted: Mounted):
    """The kernel leaves O_TRUNC to the file system (atomic_o_trunc): shell redirection
    and cp over a longer file must leave only the new bytes, and a snapshot keeps the old."""
    m = mounted.mnt
    f = m / "f"
    f.write_bytes(b"longer-text-here\n" * 1000)
    snapfs("snapshot", "create", m, "before")
    os.utime(f, ns=(1, 1))
    os.close(os.open(f, os.O_WRONLY | os.O_TRUNC))
    st = os.stat(f)
    assert st.st_size == 0 and st.st_blocks == 0
    assert st.st_mtime_ns > 1 and st.st_ctime_ns > 1
    subprocess.run(["sh", "-c", f"echo longer-text-here > {f}; echo a > {f}"], check=True)
    assert f.read_bytes() == b"a\n"
    src = m / "small"
    src.write_bytes(b"123456")
    subprocess.run(["cp", str(src), str(f)], check=True)
    assert f.read_bytes() == b"123456"
    with open(f, "r+b") as fh:  # O_TRUNC is not implied: the bytes stay
        assert fh.read() == b"123456"
    assert (mounted.snap("before") / "f").read_bytes() == b"longer-text-here\n" * 1000
    fifo = m / "p"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR | os.O_TRUNC)  # ignored for what is not a regular file
    os.close(fd)
    assert errno_of(os.open, mounted.snap("before") / "f", os.O_WRONLY | os.O_TRUNC) == errno.EROFS


def test_xattrs_in_every_namespace(mounted: Mounted):
    f = mounted.mnt / "f"
    f.write_bytes(b"")
    os.setxattr(f, "user.a", b"1")
    os.setxattr(f, "trusted.b", b"2")
    os.setxattr(f, "security.c", b"3")
    assert os.getxattr(f, "user.a") == b"1"
    assert {"user.a", "trusted.b", "security.c"} <= set(os.listxattr(f))
    assert "user.snapfs.ino" not in os.listxattr(f)
    os.removexattr(f, "user.a")
    assert errno_of(os.getxattr, f, "user.a") == errno.ENODATA
    assert errno_of(os.setxattr, f, "user.big", b"x" * 70000) == errno.E2BIG  # the kernel's own limit
    assert errno_of(os.setxattr, f, "user.big", b"x" * 4041) == errno.ENOSPC  # snapfs's: one 4 KiB block
    assert errno_of(os.setxattr, f, "foo.bar", b"x") == errno.EOPNOTSUPP
    assert errno_of(os.setxattr, f, "user.snapfs.ino", b"9") == errno.EPERM


def test_statfs_reports_volume_size_and_inodes(mounted: Mounted):
    s = os.statvfs(mounted.mnt)
    assert s.f_frsize * s.f_blocks == 64 * 1024 * 1024
    assert s.f_files == 1000
    before = s.f_ffree
    (mounted.mnt / "x").write_bytes(b"1" * 40960)
    s2 = os.statvfs(mounted.mnt)
    assert s2.f_ffree == before - 1
    assert s2.f_bfree == s.f_bfree - 10


def test_fsync_and_unlink_while_open(mounted: Mounted):
    f = mounted.mnt / "f"
    with open(f, "w+b") as fh:
        fh.write(b"data")
        fh.flush()
        os.fsync(fh.fileno())
        os.unlink(f)
        fh.seek(0)
        assert fh.read() == b"data"
    assert not f.exists()


def test_full_volume_reports_enospc_and_keeps_what_was_written(small_mount: Mounted):
    m = small_mount.mnt
    (m / "keep").write_bytes(b"k" * 1000)
    with pytest.raises(OSError) as ei:
        with open(m / "big", "wb") as fh:
            for _ in range(64):
                fh.write(b"x" * 65536)
                fh.flush()
    assert ei.value.errno == errno.ENOSPC
    assert (m / "keep").read_bytes() == b"k" * 1000
    os.unlink(m / "big")
    made = 0
    with pytest.raises(OSError) as ei:
        for i in range(100):
            (m / f"n{i}").write_bytes(b"")
            made += 1
    assert ei.value.errno == errno.ENOSPC and made < 20
    r = snapfs("df", m)
    assert "testvol" in r.stdout


def test_ordinary_tools_copy_a_tree_faithfully(mounted: Mounted, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_bytes(os.urandom(200_000))
    os.symlink("sub/f", src / "l")
    subprocess.run(["cp", "-a", f"{src}/.", str(mounted.mnt / "copy")], check=True)
    r = subprocess.run(["diff", "-r", "--no-dereference", str(src), str(mounted.mnt / "copy")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    tar = subprocess.run(["tar", "-C", str(mounted.mnt), "-cf", "-", "."], capture_output=True, check=True)
    assert b".snapshot" not in tar.stdout
