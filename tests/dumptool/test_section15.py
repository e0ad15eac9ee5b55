"""pydump -> pyrestore round trips for what the real restore 0.4b47 gets
wrong (dump-format.md section 15): 255-byte names, device numbers beyond
8 bits of major or minor, directory xattrs that real dump splits into two
records.  pyrestore must put them all back exactly."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import console_script
from dumptool.format import TP_BSIZE, Header, RecordType
from samples import real_dump_of, xattrs

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setfacl"),
                                reason="needs root (mknod) and setfacl")

LONGEST = "N" * 255
#: (name, type, major, minor): the sheet's 259:300 and the largest the format holds
DEVICES = [("blk-259-300", stat.S_IFBLK, 259, 300), ("chr-4095-1048575", stat.S_IFCHR, 4095, 1048575),
           ("chr-300-5", stat.S_IFCHR, 300, 5), ("blk-8-70000", stat.S_IFBLK, 8, 70000)]


def run(tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([console_script(tool), *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def big_dir_xattrs(d: Path, big: int = 1536) -> None:
    """An access and a default ACL and user xattrs: ext4 keeps part in the
    inode and part in an EA block, which real dump writes as two records."""
    subprocess.run(["setfacl", "-m", "u:1234:rwx,g:99:rx", "-d", "-m", "u:77:rx,g:88:r", str(d)], check=True)
    os.setxattr(d, "user.small", b"s")
    os.setxattr(d, "user.big", (bytes(range(256)) * 6)[:big])


def round_trip(src: Path, tmp_path: Path) -> Path:
    image = tmp_path / "l0.dump"
    run("pydump", "-0", "--quiet", "-f", str(image), str(src))
    out = tmp_path / "out"
    out.mkdir()
    run("pyrestore", "-r", "-f", str(image), cwd=out)
    return out


def test_255_byte_names_round_trip(tmp_path):
    src = tmp_path / "src"
    (src / LONGEST).mkdir(parents=True)
    (src / LONGEST / LONGEST).write_bytes(b"longest\n")
    (src / "d").mkdir()
    (src / "d" / LONGEST).write_bytes(b"in d\n")
    (src / "d" / "after").write_bytes(b"after\n")
    os.symlink(LONGEST, src / "d" / ("S" * 255))
    out = round_trip(src, tmp_path)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.name != "restoresymtable") == \
        sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    assert (out / LONGEST / LONGEST).read_bytes() == b"longest\n"
    assert (out / "d" / LONGEST).read_bytes() == b"in d\n"
    assert os.readlink(out / "d" / ("S" * 255)) == LONGEST
    listed = run("pyrestore", "-t", "-f", str(tmp_path / "l0.dump"), cwd=tmp_path).stdout
    assert f"./{LONGEST}/{LONGEST}\n" in listed and f"./d/{LONGEST}\n" in listed


def test_large_device_numbers_round_trip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name, kind, major, minor in DEVICES:
        os.mknod(src / name, kind | 0o640, os.makedev(major, minor))
    out = round_trip(src, tmp_path)
    for name, kind, major, minor in DEVICES:
        st = (out / name).lstat()
        assert stat.S_IFMT(st.st_mode) == kind, name
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor), name
        assert stat.S_IMODE(st.st_mode) == 0o640, name


def test_directory_xattrs_that_ext4_splits_round_trip(tmp_path):
    src = tmp_path / "src"
    (src / "acl-dir" / "inner").mkdir(parents=True)
    big_dir_xattrs(src / "acl-dir")
    big_dir_xattrs(src)
    out = round_trip(src, tmp_path)
    want = xattrs(src / "acl-dir")
    assert {"system.posix_acl_access", "system.posix_acl_default", "user.small", "user.big"} <= set(want)
    assert xattrs(out / "acl-dir") == want
    assert xattrs(out) == xattrs(src)
    # one EA record per inode on our image (section 15)
    data = (tmp_path / "l0.dump").read_bytes()
    ea = [Header.unpack(data[i:i + TP_BSIZE]).c_inumber for i in range(0, len(data), TP_BSIZE)
          if _is_ea(data[i:i + TP_BSIZE])]
    assert len(ea) == len(set(ea))


def _is_ea(block: bytes) -> bool:
    try:
        h = Header.unpack(block)
    except Exception:
        return False
    return h.c_type == RecordType.TS_INODE and h.is_extattr


@pytest.mark.skipif(not os.access("/sbin/dump", os.X_OK) or not shutil.which("mke2fs"),
                    reason="needs the real dump and mke2fs")
def test_directory_xattrs_in_two_records_of_a_real_dump_are_merged(tmp_path):
    src = tmp_path / "src"
    (src / "acl-dir").mkdir(parents=True)
    big_dir_xattrs(src / "acl-dir", big=400)  # the EA block of a 16M ext4 is 1 KiB
    image = real_dump_of(src, tmp_path, inode_size=256)
    data = image.read_bytes()
    ea = [Header.unpack(data[i:i + TP_BSIZE]).c_inumber for i in range(0, len(data), TP_BSIZE)
          if _is_ea(data[i:i + TP_BSIZE])]
    assert len(ea) != len(set(ea)), "the real dump was expected to write two EA records for acl-dir"
    out = tmp_path / "out"
    out.mkdir()
    run("pyrestore", "-r", "-f", str(image), cwd=out)
    assert xattrs(out / "acl-dir") == xattrs(src / "acl-dir")


def _pyrestore_x(image: Path, out: Path) -> subprocess.CompletedProcess:
    out.mkdir()
    return subprocess.run([console_script("pyrestore"), "-x", "-f", str(image)], cwd=out, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)


def test_real_dumps_cut_255_byte_entries_are_read_right(tmp_path):
    """Real dump 0.4b47 stores a 255-byte entry's d_reclen mod 256; as the
    last entry of its directory its name is whole: every name comes back, exit 0."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for n in range(250, 256):
        (src / f"a{n}".ljust(n, "x")).write_text(str(n))
        (src / "d" / f"b{n}".ljust(n, "y")).write_text(str(n))
    (src / "d" / "after").write_text("after")
    image = real_dump_of(src, tmp_path)
    done = _pyrestore_x(image, tmp_path / "out")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    for path in [p for p in src.rglob("*")]:
        twin = tmp_path / "out" / path.relative_to(src)
        assert twin.exists(), path.name[:8]
        if path.is_file():
            assert twin.read_text() == path.read_text()


def test_real_dumps_overwritten_255_byte_names_lose_no_file(tmp_path):
    """A cut 255-byte entry with entries after it: the dump wrote them over
    its name.  Every entry after it is read right, the file itself comes
    back as #INODE, and the lost names are one error line (exit 1)."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for n in range(6):
        (src / "d" / f"c{n}".ljust(255, "z")).write_text(f"long {n}")
        (src / "d" / f"s{n}").write_text(f"short {n}")
    image = real_dump_of(src, tmp_path)
    done = _pyrestore_x(image, tmp_path / "out")
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and "255-byte name" in done.stderr, done.stderr
    got = {p.name: p.read_text() for p in (tmp_path / "out" / "d").iterdir()}
    assert {got[f"s{n}"] for n in range(6)} == {f"short {n}" for n in range(6)}
    assert sorted(v for k, v in got.items() if not k.startswith("s")) == [f"long {n}" for n in range(6)]
