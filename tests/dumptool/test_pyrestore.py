"""pyrestore against images made by the real Linux dump 0.4b47 of ext4 loop images.

The source tree has every file type and attribute a dump image holds; the
real ``restore -t`` is the oracle for listings, the source tree (or the
mounted file system) for everything restored.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dumptool.format import TP_BSIZE, Header, RecordType
from conftest import console_script
from samples import DATE, Loop, ext4_volume, mkfs, needs_real_dump, plant_common_files, real_restore
from samples import xattrs as _xattrs
from test_pydump import pyrestore, pyrestore_into

LONG = "L" * 254
LONGEST = "M" * 255
UTF8 = "ünïcødé-名前.txt"

pytestmark = [pytest.mark.root, needs_real_dump]


# --- building the source, the file system and the images ----------------------------


def make_tree(root: Path) -> None:
    """Every kind of file and attribute the dump format holds."""
    plant_common_files(root)
    (root / "emptydir").mkdir()
    (root / "sticky").mkdir()
    (root / UTF8).write_bytes("ü\n".encode())
    (root / "dir2" / LONG).write_bytes(b"long name\n")
    os.mknod(root / "chardev", 0o620 | stat.S_IFCHR, os.makedev(4, 5))
    os.mknod(root / "blkdev", 0o660 | stat.S_IFBLK, os.makedev(8, 1))
    os.chown(root / "hello.txt", 1234, 5678)
    os.chown(root / "dir2", 42, 43)
    os.chmod(root / "dir1" / "sub" / "file", 0o4755)
    os.chmod(root / "sticky", 0o1777)
    os.setxattr(root / "hello.txt", "user.foo", b"bar")
    os.setxattr(root / "dir1", "user.dirnote", b"on a directory")
    os.setxattr(root / "dir1" / "sub" / "file", "trusted.t", b"T")
    os.setxattr(root / "empty", "security.test", b"S")
    subprocess.run(["setfacl", "-m", "u:1234:rw", str(root / "hello.txt")], check=True)
    subprocess.run(["setfacl", "-m", "u:77:rx", "-d", "-m", "u:77:rx", str(root / "dir2")], check=True)
    for n, p in enumerate(sorted(root.rglob("*"))):
        os.utime(p, (DATE + n, DATE - 86400 + n), follow_symlinks=False)
    os.utime(root, (DATE, DATE))


@pytest.fixture(scope="module")
def level0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """``(source tree, real level-0 image)``."""
    base = tmp_path_factory.mktemp("level0")
    src = base / "src"
    src.mkdir()
    make_tree(src)
    with ext4_volume(src, base / "fs.img") as loop:
        image = loop.dump(0, base / "l0.dump")
    yield src, image



def listing(out: str) -> list[tuple[int, str]]:
    found = []
    for line in out.splitlines():
        num, sep, name = line.strip().partition("\t")
        if sep and num.isdigit():
            found.append((int(num), name))
    return found


# --- comparing trees ------------------------------------------------------------------


def describe(root: Path, *, skip: tuple[str, ...] = ("lost+found", "restoresymtable")) -> dict[str, tuple]:
    """Everything pyrestore must put back, per relative path."""
    out: dict[str, tuple] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0] in skip:
            continue
        st = p.lstat()
        kind = stat.S_IFMT(st.st_mode)
        if stat.S_ISREG(st.st_mode):
            data = p.read_bytes()
            extra: object = (data, st.st_size, st.st_blocks * 512 < st.st_size if st.st_size > 65536 else None)
        elif stat.S_ISLNK(st.st_mode):
            extra = os.readlink(p)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            extra = st.st_rdev
        else:
            extra = None
        mode = None if stat.S_ISLNK(st.st_mode) else stat.S_IMODE(st.st_mode)
        out[rel] = (kind, mode, st.st_uid, st.st_gid, int(st.st_mtime),
                    st.st_nlink if not stat.S_ISDIR(st.st_mode) else None, _xattrs(p), extra)
    return out


def assert_same_tree(want: Path, got: Path, *, root_mtime: bool = False) -> None:
    """Same names and the same everything under them (mke2fs -d does not copy the root's mtime)."""
    a, b = describe(want), describe(got)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name
    if root_mtime:
        assert int(got.stat().st_mtime) == int(want.stat().st_mtime)


# --- listing, extraction, rebuild, compare ------------------------------------------------


def test_listing_equals_real_restore_listing(level0, tmp_path):
    _, image = level0
    ours = pyrestore("-t", "-f", str(image), cwd=tmp_path)
    theirs = real_restore("-t", "-f", str(image), cwd=tmp_path, tmp=tmp_path, check=False)
    assert ours.returncode == 0, ours.stderr
    got = listing(ours.stdout)
    long_ino = [i for i, n in got if n.endswith(LONG)]
    assert long_ino
    # the real restore garbles long names (dump-format.md section 15): leave that inode out
    want = [(i, n) for i, n in listing(theirs.stdout) if i not in long_ino]
    assert [(i, n) for i, n in got if i not in long_ino] == want
    assert any(n == f"./dir2/{LONG}" for _, n in got)
    assert any(n == f"./{UTF8}" for _, n in got)


def test_listing_of_a_named_subtree(level0, tmp_path):
    _, image = level0
    ours = pyrestore("-t", "-f", str(image), "dir1", cwd=tmp_path)
    assert ours.returncode == 0, ours.stderr
    assert [n for _, n in listing(ours.stdout)] == ["./dir1", "./dir1/big.bin", "./dir1/sub", "./dir1/sub/file"] \
        or sorted(n for _, n in listing(ours.stdout)) == ["./dir1", "./dir1/big.bin", "./dir1/sub", "./dir1/sub/file"]


def test_rebuild_of_a_level0_equals_the_source(level0, tmp_path):
    src, image = level0
    done = pyrestore("-r", "-f", str(image), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_tree(src, tmp_path)
    assert (tmp_path / "restoresymtable").exists()
    sparse = tmp_path / "sparse"
    assert sparse.stat().st_blocks * 512 < 64 * 1024
    assert os.getxattr(tmp_path / "dir2", "system.posix_acl_default")
    assert (tmp_path / "hello.txt").stat().st_ino == (tmp_path / "dir2" / "hardlink").stat().st_ino


def test_extract_everything_equals_the_source(level0, tmp_path):
    src, image = level0
    done = pyrestore("-x", "-o", "-f", str(image), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_tree(src, tmp_path)
    assert not (tmp_path / "restoresymtable").exists()


@pytest.mark.parametrize("target_setup", ["setgid-dir-and-umask-077", "default-acl"])
def test_files_come_out_as_on_the_image_whatever_the_target_directory_gives_new_files(level0, tmp_path,
                                                                                      target_setup):
    """pyrestore skips the chown and chmod of a new file that creating it
    already made right: a set-group-ID directory of another group, a strict
    umask or a default ACL in the target must not leave their mark."""
    src, image = level0
    target = tmp_path / "t"
    target.mkdir()
    if target_setup == "default-acl":
        subprocess.run(["setfacl", "-d", "-m", "u:99:r,g::-,o::-", str(target)], check=True)
        umask = 0o022
    else:
        os.chown(target, 0, 4321)
        os.chmod(target, 0o2777)
        umask = 0o077
    done = subprocess.run([console_script("pyrestore"), "-x", "-f", str(image)], cwd=target, capture_output=True,
                          text=True, timeout=300, preexec_fn=lambda: os.umask(umask))
    assert done.returncode == 0, done.stderr
    want, got = describe(src), describe(target)
    assert sorted(want) == sorted(got)
    for name in want:
        if target_setup == "default-acl":  # inherited ACLs stay, as with restore; all else as on the image
            assert want[name][:6] + want[name][7:] == got[name][:6] + got[name][7:], name
        else:
            assert want[name] == got[name], name


def test_extract_a_named_subset(level0, tmp_path):
    src, image = level0
    done = pyrestore("-x", "-f", str(image), "dir1/sub", "./hello.txt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert got == ["dir1", "dir1/sub", "dir1/sub/file", "hello.txt"]
    assert (tmp_path / "dir1/sub/file").stat().st_mode & 0o7777 == 0o4755
    assert (tmp_path / "hello.txt").read_bytes() == b"hello\n"
    assert _xattrs(tmp_path / "hello.txt") == _xattrs(src / "hello.txt")


def test_extract_of_a_name_not_on_the_image_fails(level0, tmp_path):
    _, image = level0
    done = pyrestore("-x", "-f", str(image), "nosuch", cwd=tmp_path)
    assert done.returncode != 0
    assert "not found" in done.stderr and "Traceback" not in done.stderr


def test_compare_identical_then_modified(level0, tmp_path):
    src, image = level0
    tree = tmp_path / "tree"
    tree.mkdir()
    assert pyrestore("-r", "-f", str(image), cwd=tree).returncode == 0
    same = pyrestore("-C", "-D", str(tree), "-f", str(image), cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    (tree / "dir1" / "sub" / "file").write_bytes(b"SUB\n")
    changed = pyrestore("-C", "-D", str(tree), "-f", str(image), cwd=tmp_path)
    assert changed.returncode == 2
    assert "./dir1/sub/file: tape and disk copies are different" in changed.stderr


# --- incrementals -----------------------------------------------------------------------


def test_incremental_chain_rebuilds_the_final_tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    (src / "olddir" / "inner").mkdir(parents=True)
    (src / "olddir" / "inner" / "f").write_bytes(b"inner\n")
    (src / "becomes-dir").write_bytes(b"a file now\n")
    mkfs(src, tmp_path / "fs.img")
    loop = Loop(tmp_path / "fs.img")
    dumpdates = tmp_path / "dumpdates"
    dumpdates.write_text("")
    try:
        time.sleep(1.1)
        l0 = loop.dump(0, tmp_path / "l0.dump", "-u", "-D", str(dumpdates))
        time.sleep(1.1)
        mnt = loop.mount(tmp_path / "mnt")
        (mnt / "dir1" / "sub" / "file").write_bytes(b"changed\n")
        (mnt / "dir2" / "new.txt").write_bytes(b"new\n")
        (mnt / "empty").unlink()
        (mnt / "hello.txt").rename(mnt / "dir1" / "hello-renamed")
        (mnt / "dir1" / "sub").rename(mnt / "moved-sub")
        shutil.rmtree(mnt / "olddir")
        (mnt / "becomes-dir").unlink()
        (mnt / "becomes-dir").mkdir()
        (mnt / "becomes-dir" / "x").write_bytes(b"x\n")
        os.chmod(mnt / "sparse", 0o600)
        loop.umount()
        time.sleep(1.1)
        l1 = loop.dump(1, tmp_path / "l1.dump", "-u", "-D", str(dumpdates))
        mnt = loop.mount(tmp_path / "mnt")
        out = tmp_path / "out"
        out.mkdir()
        first = pyrestore("-r", "-f", str(l0), cwd=out)
        assert first.returncode == 0, first.stderr
        second = pyrestore("-r", "-f", str(l1), cwd=out)
        assert second.returncode == 0, second.stderr
        assert_same_tree(mnt, out, root_mtime=True)
        assert not any(p.name.startswith("RSTTMP") for p in out.iterdir())
    finally:
        loop.close()


def test_incremental_out_of_order_is_refused(tmp_path, level0):
    _, image = level0
    # a level 0 pretends to be the base of nothing: fake an incremental by editing c_ddate
    data = bytearray(image.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    assert pyrestore("-r", "-f", str(image), cwd=out).returncode == 0
    fake = _set_ddate(data, 12345)
    (tmp_path / "fake.dump").write_bytes(fake)
    done = pyrestore("-r", "-f", str(tmp_path / "fake.dump"), cwd=out)
    assert done.returncode != 0
    assert "too" in done.stderr and "Traceback" not in done.stderr
    assert (out / "hello.txt").exists()


def _set_ddate(data: bytearray, ddate: int) -> bytes:
    for i in range(0, len(data), TP_BSIZE):
        block = bytes(data[i:i + TP_BSIZE])
        try:
            h = Header.unpack(block)
        except Exception:
            continue
        data[i:i + TP_BSIZE] = dataclasses.replace(h, c_ddate=ddate).pack()
    return bytes(data)


# --- bad input ----------------------------------------------------------------------------


def test_not_a_dump_image(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello" * 1000)
    done = pyrestore("-t", "-f", str(junk), cwd=tmp_path)
    assert done.returncode != 0
    assert "not a dump image" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_input_file(tmp_path):
    done = pyrestore("-t", "-f", str(tmp_path / "nope"), cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _header_index(image: bytes, ino: int) -> int:
    for i in range(0, len(image), TP_BSIZE):
        try:
            h = Header.unpack(image[i:i + TP_BSIZE])
        except Exception:
            continue
        if h.c_type == RecordType.TS_INODE and h.c_inumber == ino and not h.is_extattr:
            return i
    raise AssertionError(f"no header for inode {ino}")


def test_truncated_image_restores_what_it_can(level0, tmp_path):
    src, image = level0
    data = image.read_bytes()
    cut = tmp_path / "cut.dump"
    names = dict((n, i) for i, n in listing(pyrestore("-t", "-f", str(image), cwd=tmp_path).stdout))
    cut.write_bytes(data[:_header_index(data, names["./dir1/big.bin"]) + 100 * TP_BSIZE])
    out = tmp_path / "out"
    out.mkdir()
    done = pyrestore("-x", "-f", str(cut), cwd=out)
    assert done.returncode != 0
    assert "truncated" in done.stderr and "Traceback" not in done.stderr
    assert (out / "dir1" / "sub").is_dir()
    assert (out / "blkdev").exists()  # inodes before big.bin are restored


def test_flipped_byte_in_a_header_resyncs(level0, tmp_path):
    src, image = level0
    data = bytearray(image.read_bytes())
    names = dict((n, i) for i, n in listing(pyrestore("-t", "-f", str(image), cwd=tmp_path).stdout))
    at = _header_index(bytes(data), names["./dir1/sub/file"])
    data[at + 700] ^= 0xFF
    bad = tmp_path / "bad.dump"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    done = pyrestore("-x", "-f", str(bad), cwd=out)
    assert done.returncode != 0
    assert "resync" in done.stderr and "Traceback" not in done.stderr
    assert not (out / "dir1" / "sub" / "file").exists()
    assert (out / "dir1" / "big.bin").read_bytes() == (src / "dir1" / "big.bin").read_bytes()
    assert (out / "sparse").read_bytes() == (src / "sparse").read_bytes()
    assert (out / "hello.txt").read_bytes() == b"hello\n"


def test_unwritable_target(level0, tmp_path):
    _, image = level0
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "none", str(ro)], check=True)
    try:
        done = pyrestore("-x", "-f", str(image), cwd=ro)
    finally:
        subprocess.run(["umount", str(ro)], check=True)
    assert done.returncode != 0
    assert "Read-only" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_255_byte_name_cut_by_the_real_dump_is_read_and_the_rest_restored(tmp_path):
    """Real dump 0.4b47 cuts d_reclen of a 255-byte name to 8 bits: the entry
    is read right (its name when the dump did not write over it, else #INODE
    and one line saying so) and nothing else is lost (test_section15 has more)."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / LONGEST).write_bytes(b"longest\n")
    (src / "d" / "after").write_bytes(b"after\n")
    mkfs(src, tmp_path / "fs.img")
    loop = Loop(tmp_path / "fs.img")
    try:
        image = loop.dump(0, tmp_path / "l0.dump")
    finally:
        loop.close()
    out = tmp_path / "out"
    out.mkdir()
    done = pyrestore("-x", "-f", str(image), cwd=out)
    assert "Traceback" not in done.stderr and "mangled" not in done.stderr
    assert (out / "d" / "after").read_bytes() == b"after\n"
    longest = [p for p in (out / "d").iterdir() if p.name != "after"]
    assert [p.read_bytes() for p in longest] == [b"longest\n"]
    assert done.returncode == (0 if longest[0].name == LONGEST else 1), done.stderr


# --- multi-volume ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def volumes(level0, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The level-0 file system dumped on 300 KiB volumes by the real dump (-M)."""
    src, _ = level0
    base = tmp_path_factory.mktemp("volumes")
    mkfs(src, base / "fs.img")
    loop = Loop(base / "fs.img")
    try:
        loop.dump(0, base / "vol", "-M", "-B", "300")
    finally:
        loop.close()
    found = sorted(base.glob("vol0*"))
    assert len(found) >= 3
    return found


def test_multi_volume_follows_the_volumes_it_is_given(level0, volumes, tmp_path):
    src, _ = level0
    names = "\n".join(str(v) for v in volumes[1:]) + "\n"
    done = pyrestore("-x", "-o", "-f", str(volumes[0]), cwd=tmp_path, stdin=names)
    assert done.returncode == 0, done.stderr
    assert_same_tree(src, tmp_path)


def test_dash_M_opens_prefix001_then_each_next_volume_without_asking(level0, volumes, tmp_path):
    src, _ = level0
    prefix = str(volumes[0])[:-3]
    listed = pyrestore("-t", "-y", "-M", "-f", prefix, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "./dir1/big.bin" in [n for _, n in listing(listed.stdout)]
    assert_same_tree(src, pyrestore_into(tmp_path / "out", "-y", "-M", "-f", prefix))


def test_dash_M_with_a_volume_missing_says_which_and_asks(volumes, tmp_path):
    prefix = tmp_path / "set"
    for n, vol in enumerate(volumes[:2], 1):  # only the first two volumes
        shutil.copyfile(vol, f"{prefix}{n:03d}")
    done = pyrestore("-x", "-M", "-f", str(prefix), cwd=tmp_path, stdin="none\n")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"cannot open input {prefix}003" in done.stderr and "Mount volume 3" in done.stderr
    assert pyrestore("-t", "-M", "-f", "-", cwd=tmp_path).returncode == 2


def test_multi_volume_in_the_wrong_order_asks_again(level0, volumes, tmp_path):
    src, _ = level0
    answers = [volumes[2], volumes[1], volumes[2]] + volumes[3:]
    done = pyrestore("-x", "-f", str(volumes[0]), "dir1", cwd=tmp_path,
                     stdin="\n".join(str(v) for v in answers) + "\n")
    assert done.returncode == 0, done.stderr
    assert "wrong volume" in done.stderr
    assert (tmp_path / "dir1" / "big.bin").read_bytes() == (src / "dir1" / "big.bin").read_bytes()


def test_multi_volume_with_y_fails_clearly_and_keeps_what_was_restored(volumes, tmp_path):
    done = pyrestore("-x", "-y", "-f", str(volumes[0]), cwd=tmp_path)
    assert done.returncode != 0
    assert "volume 2" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "dir1").is_dir()


def test_multi_volume_without_the_next_volume_reports_truncation(volumes, tmp_path):
    done = pyrestore("-x", "-f", str(volumes[0]), cwd=tmp_path, stdin="none\n")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert (tmp_path / "blkdev").exists()


# --- tapes ----------------------------------------------------------------------------------


def test_s_reads_the_dump_in_a_later_tape_file(level0, nst0, tmp_path):
    from tapelib import open_device

    _, image = level0
    data = image.read_bytes()
    record = 10 * TP_BSIZE
    with open_device(nst0, writable=True) as drive:
        drive.write(b"not a dump".ljust(record, b"\0"))
        drive.write_filemarks(1)
        for i in range(0, len(data), record):
            drive.write(data[i:i + record])
        drive.write_filemarks(1)
        drive.rewind()
    done = pyrestore("-t", "-s", "2", "-f", nst0, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    real = real_restore("-t", "-f", str(image), cwd=tmp_path, tmp=tmp_path, check=False)
    assert listing(done.stdout) == listing(real.stdout)


def test_s_on_a_file_is_refused(level0, tmp_path):
    _, image = level0
    done = pyrestore("-t", "-s", "2", "-f", str(image), cwd=tmp_path)
    assert done.returncode != 0 and "-s needs a tape" in done.stderr


# --- interactive -------------------------------------------------------------------------------


def test_interactive_browse_add_delete_extract(level0, tmp_path):
    src, image = level0
    commands = "ls\ncd dir1\npwd\nls\nadd sub\ncd ..\nadd hello.txt dir2\ndelete dir2\nwhat\nbogus\nextract\n"
    done = pyrestore("-i", "-f", str(image), cwd=tmp_path, stdin=commands)
    assert done.returncode == 0, done.stderr
    # as restore: ls, pwd and messages on stderr, the prompt and what on stdout
    assert "/dir1\n" in done.stderr and "big.bin  sub/" in done.stderr
    assert "*hello.txt" not in done.stderr  # ls ran before add
    assert "Dump   date:" in done.stdout and "bogus: unknown command" in done.stderr
    got = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert got == ["dir1", "dir1/sub", "dir1/sub/file", "hello.txt"]
    assert _xattrs(tmp_path / "hello.txt") == _xattrs(src / "hello.txt")
