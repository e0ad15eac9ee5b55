"""Pass V of a dump of any tree: xattrs that do not fit a file's 4 KiB EA record are no longer lost
(the EA record keeps the ACLs, ``user.DOSATTRIB`` and the small ones, the rest goes after the last
file); a file history observer with ``add_pass5`` hears where that record starts; an image with no
file to carry it says what it could not dump; the layout round-trips, written and read as it streams."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tmpfs_at
from dumptool.dump import Dump, DumpOptions
from dumptool.format import RecordType, unpack_xattr_payload
from dumptool.errors import FormatError
from dumptool.format import DR_EXTATTRIBUTES, ByteOrder, Dinode, Header, file_slices, inode_records, volume_header
from dumptool.format.pass5 import EXT_PASS5, Entry, Kind, Spooled, pack_pass5, pass5_records, read_pass5, unpack_pass5
from dumptool.format.walk import assemble_file, walk_image
from dumptool.offsetmap import OffsetMap

BIN = Path(sys.executable).parent
PYRESTORE, RESTORE = str(BIN / "pyrestore"), "/sbin/restore"


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A tmpfs (xattrs of any size, as Samba's on ext4 cannot hold)."""
    with tmpfs_at(tmp_path / "tmpfs", "size=256m") as d:
        yield d


class Pass5Position:
    """A file history observer that implements only what Pass V adds."""

    def __init__(self) -> None:
        self.heard: list[tuple[int, int, int | None]] = []

    def begin(self, front): pass
    def add_dir(self, ino, entries, blocks): pass
    def add_node(self, ino, node, position): pass
    def finish(self, trailer): pass
    def close(self): pass

    def add_pass5(self, ino, position) -> None:
        self.heard.append((ino, position.block, position.address))


def dump(src: Path, out: Path, history=()) -> list[str]:
    warnings: list[str] = []
    Dump(DumpOptions(source=str(src), output=str(out), quiet=True, progress_interval=0, history=tuple(history)),
         warn=warnings.append).run()
    return warnings


def source_with_big_xattr(tmpfs: Path) -> tuple[Path, Path, bytes]:
    """``src/a.txt`` with a 10,000-byte ``user.big`` (more than an EA record holds)."""
    src = tmpfs / "src"
    src.mkdir()
    f = src / "a.txt"
    f.write_text("a\n")
    big = os.urandom(10_000)
    os.setxattr(f, "user.big", big)
    return src, f, big


def test_the_layout_round_trips():
    entries = [Entry(Kind.NTACL, 5, b"", b"\1" * 40_000), Entry(Kind.STREAM, 7, b"s", b""),
               Entry(99, 3, b"future", b"x")]
    assert unpack_pass5(pack_pass5(entries)) == entries


def test_xattrs_beyond_4_kib_go_to_pass_v_and_come_back(tmpfs, tmp_path):
    src, f, big = source_with_big_xattr(tmpfs)
    os.setxattr(f, "user.DOSATTRIB", b"0x20\0")
    os.setxattr(f, "security.NTACL", b"\4" * 6000)
    subprocess.run(["setfacl", "-m", "u:1234:rw", str(f)], check=True)
    (src / "z.txt").write_text("the carrier\n")
    image = tmp_path / "x.dump"
    heard = Pass5Position()
    assert dump(src, image, [heard]) == []  # nothing "not dumped"
    data = image.read_bytes()
    records = list(walk_image(data))
    p5 = [i for i, r in enumerate(records) if r.header.c_extattributes == EXT_PASS5]
    assert len(p5) == 1
    rec = records[p5[0]]
    carrier = rec.header.c_inumber
    assert carrier == max(r.header.c_inumber for r in records if r.header.c_type == RecordType.TS_INODE)
    parts = [rec] + [r for r in records[p5[0] + 1:] if r.header.c_type == RecordType.TS_ADDR]
    entries = unpack_pass5(assemble_file(parts))
    assert {(Kind(e.kind), e.name, e.value) for e in entries} == {(Kind.XATTR, b"user.big", big),
                                                                  (Kind.NTACL, b"", b"\4" * 6000)}
    # the EA record kept the ACL and DOSATTRIB
    ea = next(r for r in records if r.header.c_extattributes == 3)
    names = {n for n, _ in unpack_xattr_payload(bytes(ea.data[:ea.header.c_dinode.size]))}
    assert names == {b"system.posix_acl_access", b"user.DOSATTRIB"}
    # the observer heard where the record starts
    assert heard.heard == [(carrier, rec.header.c_tapea, heard.heard[0][2])]
    address = heard.heard[0][2]
    assert address is not None and address <= rec.header.c_tapea * 1024 < address + 10 * 1024
    # back, into a tmpfs: every xattr; the real restore passes over it with one line
    out = tmpfs / "out"
    out.mkdir()
    subprocess.run([PYRESTORE, "-x", "-y", "-f", str(image)], cwd=out, check=True, capture_output=True)
    for name in ("user.big", "security.NTACL", "user.DOSATTRIB", "system.posix_acl_access"):
        assert os.getxattr(out / "a.txt", name) == os.getxattr(f, name), name
    real = tmpfs / "real"
    real.mkdir()
    r = subprocess.run([RESTORE, "-x", "-a", "-o", "-y", "-f", str(image)], cwd=real, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stderr.count("unexpected inode extension 21326, skipping") == 1, r.stderr
    assert (real / "z.txt").read_text() == "the carrier\n"
    assert os.getxattr(real / "a.txt", "user.DOSATTRIB") == b"0x20\0"


def test_an_image_without_a_file_says_what_pass_v_could_not_carry(tmpfs, tmp_path):
    src = tmpfs / "only-dirs"
    (src / "d").mkdir(parents=True)
    os.setxattr(src / "d", "user.big", os.urandom(8000))
    warnings = dump(src, tmp_path / "d.dump")
    assert warnings == ["1 object(s) for Pass V (1 xattr) not dumped: the image holds no file to carry them"]
    r = subprocess.run([RESTORE, "-t", "-f", str(tmp_path / "d.dump")], capture_output=True, text=True)
    assert r.returncode == 0 and "./d" in r.stdout


def test_a_direct_access_extract_goes_on_to_pass_v(tmpfs, tmp_path):
    """``pyrestore -x NAME`` with the file history stops reading after its files, but a file
    whose xattrs went to Pass V gets them: the history says where Pass V starts and the
    restore seeks there (a few records, not the 8 MiB between)."""
    src, f, big = source_with_big_xattr(tmpfs)
    (src / "m.bin").write_bytes(os.urandom(8 << 20))
    (src / "z.txt").write_text("the carrier\n")
    image = tmp_path / "dar.dump"
    assert dump(src, image) == []
    out = tmpfs / "out"
    out.mkdir()
    r = subprocess.run([PYRESTORE, "-x", "-v", "-f", str(image), "./a.txt"], cwd=out, capture_output=True,
                       text=True, check=True)
    assert os.getxattr(out / "a.txt", "user.big") == big
    assert not (out / "m.bin").exists()
    reads = [line for line in r.stdout.splitlines() if "records read" in line]
    assert reads and int(reads[0].split()[0]) < 40, r.stdout  # the 8 MiB are 800 records


def dar_source(tmpfs: Path, tmp_path: Path) -> tuple[Path, Path, bytes]:
    """4 MiB, ``a.txt`` with a big xattr, 8 MiB, the carrier: dumped (its offset map kept) with ``-Q``."""
    src = tmpfs / "src"
    src.mkdir()
    (src / "0.bin").write_bytes(os.urandom(4 << 20))  # (a.txt is sought, not read at once)
    (src / "a.txt").write_text("a\n")
    big = os.urandom(10_000)
    os.setxattr(src / "a.txt", "user.big", big)
    (src / "m.bin").write_bytes(os.urandom(8 << 20))
    (src / "z.txt").write_text("the carrier\n")
    image = tmp_path / "dar.dump"
    Dump(DumpOptions(source=str(src), output=str(image), quiet=True, progress_interval=0,
                     qfa=str(tmp_path / "dar.qfa"))).run()
    return image, tmp_path / "dar.qfa", big


def test_a_qfa_extract_with_a_damaged_pass_v_line_reads_on_to_pass_v(tmpfs, tmp_path):
    """A QFA file whose fourth line names Pass V without a usable position: ``-x -Q``
    reads on from the last wanted file to the end rather than lose Pass V."""
    image, qfa, big = dar_source(tmpfs, tmp_path)
    lines = qfa.read_text().split("\n")
    assert lines[3].startswith("pass5\t")
    made = tmp_path / "made.qfa"  # pyrestore -P's map says the same
    subprocess.run([PYRESTORE, "-P", str(made), "-f", str(image)], capture_output=True, check=True)
    assert made.read_text().split("\n")[3] == lines[3]
    lines[3] = "pass5\tdamaged"
    qfa.write_text("\n".join(lines))
    out = tmpfs / "out"
    out.mkdir()
    r = subprocess.run([PYRESTORE, "-x", "-v", "-Q", str(qfa), "-f", str(image), "./a.txt"], cwd=out,
                       capture_output=True, text=True, check=True)
    assert os.getxattr(out / "a.txt", "user.big") == big
    assert "of volume 1" in r.stdout and not (out / "m.bin").exists()  # a.txt found by its seek


def test_a_stale_file_history_still_brings_pass_v(tmpfs, tmp_path):
    """A file history whose seek lands past its file makes the extract read the image
    whole from its start: it then reads on to Pass V too (it stopped after the files)."""
    image, _, big = dar_source(tmpfs, tmp_path)
    head = next(walk_image(image.read_bytes()[:2 * 1024])).header
    omap = OffsetMap.find(head)
    assert omap is not None
    path, entries = omap.path, {e.path: e for e in omap.entries()}
    omap.close()
    a, z = entries[b"./a.txt"], entries[b"./z.txt"]
    text = path.read_bytes()
    line = b"%d\t1\t0\t%d\t" % (a.ino, a.record)
    assert line in text
    path.write_bytes(text.replace(line, b"%d\t1\t0\t%d\t" % (a.ino, z.record)))  # a.txt "starts" at z.txt
    out = tmpfs / "out"
    out.mkdir()
    r = subprocess.run([PYRESTORE, "-x", "-f", str(image), "./a.txt"], cwd=out, capture_output=True, text=True,
                       check=True)
    assert "stale file history" in r.stderr
    assert os.getxattr(out / "a.txt", "user.big") == big


class Chunks:
    """A large value given a chunk at a time (as a snapshot's stream is), ``short`` bytes fewer
    than it announces."""

    def __init__(self, data: bytes, short: int = 0) -> None:
        self.data, self.short = data, short

    def __len__(self) -> int:
        return len(self.data)

    def chunks(self):
        body = self.data[:len(self.data) - self.short]
        return (body[i:i + 70_000] for i in range(0, len(body), 70_000))


def _blocks(items) -> bytes:
    return b"".join(i.pack(ByteOrder.LITTLE) if isinstance(i, Header) else bytes(i) for i in items)


def test_pass_v_streams_both_ways_with_the_same_bytes(tmp_path):
    big = os.urandom(700_000)  # over 512 blocks: TS_ADDR continuations
    small = [Entry(Kind.NTACL, 5, b"", b"\1" * 40_000), Entry(Kind.XATTR, 6, b"user.x", b"\2" * 70_000)]
    tape = volume_header(date=1)
    dinode = Dinode(mode=0o100644, size=0)
    # written as read: the same blocks as the whole payload in memory, padded, would give
    streamed = _blocks(pass5_records(tape, 9, dinode, [*small, Entry(Kind.STREAM, 9, b"big", Chunks(big))]))
    payload = pack_pass5([*small, Entry(Kind.STREAM, 9, b"big", big)])
    whole = _blocks(_mark(inode_records(tape, 9, dataclasses.replace(dinode, size=len(payload)),
                                        file_slices(payload.ljust(-(-len(payload) // 1024) * 1024, b"\0"),
                                                    holes=False))))
    assert streamed == whole
    # a value that gives fewer bytes than it announced: no record of a wrong size
    with pytest.raises(FormatError, match="changed while dumped"):
        _blocks(pass5_records(tape, 9, dinode, [Entry(Kind.STREAM, 9, b"big", Chunks(big, short=1))]))
    # read back a few bytes at a time: the stream spooled (the others kept), the same bytes
    with open(tmp_path / "spool", "w+b") as spool:
        pieces = (payload[i:i + 999] for i in range(0, len(payload), 999))
        got = list(read_pass5(pieces, spool, keep=65536))
        assert got[:2] == small  # an xattr is never spooled, whatever its size
        assert isinstance(got[2].value, Spooled) and len(got[2].value) == len(big)
        assert b"".join(got[2].value.chunks()) == big and os.path.getsize(tmp_path / "spool") == len(big)
    with pytest.raises(FormatError, match="runs past the record"):
        list(read_pass5((payload[:-1],)))


def _mark(items):
    for item in items:
        yield item.derive(c_flags=item.c_flags | DR_EXTATTRIBUTES, c_extattributes=EXT_PASS5) \
            if isinstance(item, Header) else item
