"""pydump's fast path writes what its block-by-block path writes, byte for byte.

Without ``-B`` the engine packs file and directory headers straight to
bytes (:class:`~dumptool.format.header.InodeHeaders`, from
:func:`~dumptool.format.dinode.stat_fields`) and a file or pipe output
coalesces records into one ``writev``; under ``-B`` every block still goes
through :class:`~dumptool.format.Header` objects and the record writer one
at a time (the volume check needs it).  The second is the reference.
"""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dumptool.dump import Dump, DumpOptions
from dumptool.format import TP_BSIZE, ByteOrder, Dinode, RecordType, inode_records, volume_header
from dumptool.format.dinode import stat_fields
from dumptool.format.header import InodeHeaders
from dumptool.medium import RecordWriter, TapePosition, open_sink
from dumptool.trees import has_zero_block
from samples import plant_common_files, stamp_times

GROUP = 512 * TP_BSIZE  # the file bytes one header maps


def edge_tree(root: Path) -> None:
    """Files at the fast path's edges: zero blocks inside data (short and in
    a long run), sizes around one header's worth, an all-zero file, xattrs on
    a file and a directory, a directory of many names of every length."""
    root.mkdir()
    plant_common_files(root)
    rng = random.Random(7)
    (root / "zero-inside").write_bytes(b"a" * 1000 + bytes(3000) + b"b")
    (root / "all-zero").write_bytes(bytes(5000))
    (root / "one-group").write_bytes(rng.randbytes(GROUP))
    (root / "group-and-a-byte").write_bytes(rng.randbytes(GROUP + 1))
    (root / "zero-block-in-second-group").write_bytes(
        rng.randbytes(GROUP + 7 * TP_BSIZE) + bytes(TP_BSIZE) + rng.randbytes(100))
    (root / "long-zero-run").write_bytes(rng.randbytes(70 * TP_BSIZE) + bytes(80 * TP_BSIZE))
    # a partial last slice of zeros stays data (restore 0.4b47 mangles it as a hole)
    (root / "zero-tail").write_bytes(b"A" * TP_BSIZE + b"\0")
    (root / "zero-tail-second-group").write_bytes(rng.randbytes(GROUP) + bytes(5))
    (root / "zero-tail-and-block").write_bytes(rng.randbytes(3000) + bytes(2 * TP_BSIZE + 7))
    with open(root / "zero-tail-sparse", "wb") as f:
        f.write(rng.randbytes(8192))
        f.truncate(8192 + 5)
    os.setxattr(root / "hello.txt", "user.colour", b"blue")
    os.setxattr(root / "dir1", "user.d", b"x" * 300)
    many = root / "many"
    many.mkdir()
    for n in range(120):
        (many / (f"{n:03d}-" + "n" * (n * 2 % 250))).write_bytes(rng.randbytes(n * 37))
    stamp_times(root)


def image(src: Path, out: Path, **options: object) -> bytes:
    dump = Dump(DumpOptions(source=str(src), output=str(out), dumpdates=str(out) + ".dates", quiet=True,
                            **options))
    dump.date = 1_750_000_000  # both images name the same dump
    dump.run()
    return out.read_bytes()


def compared_tree(tmp_path: Path) -> Path:
    """:func:`edge_tree`, dumped once: the first reads of its directories and
    links move their atimes (relatime: older than the ctime); then no dump
    moves them again, and two images compare."""
    src = tmp_path / "src"
    edge_tree(src)
    image(src, tmp_path / "first")
    return src


@pytest.mark.parametrize("ntrec", [10, 64])
def test_fast_path_image_equals_the_block_by_block_one(tmp_path: Path, ntrec: int) -> None:
    src = compared_tree(tmp_path)
    fast = image(src, tmp_path / "fast", ntrec=ntrec)
    reference = image(src, tmp_path / "reference", ntrec=ntrec, volume_blocks=10**9)  # one volume
    assert len(fast) % (ntrec * TP_BSIZE) == 0
    assert fast == reference


def test_fast_path_qfa_map_equals_the_block_by_block_one(tmp_path: Path) -> None:
    src = compared_tree(tmp_path)
    fast = image(src, tmp_path / "fast", qfa=str(tmp_path / "fast.qfa"))
    reference = image(src, tmp_path / "reference", qfa=str(tmp_path / "reference.qfa"), volume_blocks=10**9)
    assert fast == reference
    lines = (tmp_path / "fast.qfa").read_text()
    assert lines == (tmp_path / "reference.qfa").read_text() and len(lines.splitlines()) > 20


# -- the header packer ---------------------------------------------------------------------------

TAPE = volume_header(date=1_750_000_000, ddate=1_700_000_000, level=3, label=b"lab", filesys=b"/src",
                     dev=b"/src", host=b"host", ntrec=16)
TEMPLATE = next(inode_records(TAPE, 0, Dinode()))


class FakeStat:
    def __init__(self, **fields: int) -> None:
        self.__dict__.update(fields)


stats = st.builds(
    FakeStat,
    st_mode=st.sampled_from([stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFCHR, stat.S_IFIFO])
    .flatmap(lambda fmt: st.integers(0, 0o7777).map(lambda perm: fmt | perm)),
    st_nlink=st.integers(0, 2**20), st_uid=st.integers(0, 2**32 - 1), st_gid=st.integers(0, 2**32 - 1),
    st_size=st.integers(0, 2**44), st_blocks=st.integers(0, 2**40),
    st_atime_ns=st.integers(-2 * 10**9, 2**33 * 10**9), st_mtime_ns=st.integers(-2 * 10**9, 2**33 * 10**9),
    st_ctime_ns=st.integers(-2 * 10**9, 2**33 * 10**9), st_rdev=st.integers(0, 2**20 - 1),
)


@settings(max_examples=300, deadline=None)
@given(st_=stats, flags=st.integers(0, 2**32 - 1), tapea=st.integers(0, 2**32 - 1),
       ino=st.integers(2, 2**32 - 1), holes=st.lists(st.booleans(), max_size=512),
       c_type=st.sampled_from([RecordType.TS_INODE, RecordType.TS_ADDR]),
       order=st.sampled_from(list(ByteOrder)))
def test_inode_headers_pack_what_header_pack_packs(st_: FakeStat, flags: int, tapea: int, ino: int,
                                                     holes: list[bool], c_type: RecordType,
                                                     order: ByteOrder) -> None:
    fields = stat_fields(st_, flags=flags)
    dinode = Dinode.from_stat(st_, flags=flags)
    assert fields[:11] == (dinode.mode, dinode.nlink, dinode.old_uid, dinode.old_gid, dinode.size,
                           dinode.atime_sec, dinode.atime_usec, dinode.mtime_sec, dinode.mtime_usec,
                           dinode.ctime_sec, dinode.ctime_usec)
    assert fields[11:] == (dinode.db[0], dinode.flags, dinode.blocks, dinode.uid, dinode.gid)
    headers = InodeHeaders(TEMPLATE, order)
    count = len(holes)
    addr = headers.data_addr(count) if all(holes) else bytes(holes).ljust(512, b"\0")
    packed = b"".join(headers.pack(c_type, tapea, ino, fields, count, addr))
    expected = TEMPLATE.derive(c_type=c_type, c_inumber=ino, c_dinode=dinode, c_count=count, c_addr=addr)
    assert packed == expected.pack(order, tapea=tapea)


# -- coalescing record writer ------------------------------------------------------------------------


def blocks(n: int, start: int = 0) -> list[bytes]:
    return [i.to_bytes(4, "little") * (TP_BSIZE // 4) for i in range(start, start + n)]


def test_coalescing_writer_writes_the_same_bytes_and_counts_the_same(tmp_path: Path) -> None:
    plain = RecordWriter(open_sink(str(tmp_path / "plain")), 10)
    gathered = RecordWriter(open_sink(str(tmp_path / "gathered")), 10, coalesce=64 * TP_BSIZE)
    for n, b in enumerate(blocks(257)):
        # a block as one part, or cut into three that are not whole blocks
        parts = (b,) if n % 2 else (b[:100], b[100:612], b[612:])
        assert gathered.write_parts(parts, TP_BSIZE) == plain.write(b)
        assert (gathered.next_block, gathered.blocks_pending, gathered.position, gathered.address) == \
            (plain.next_block, plain.blocks_pending, plain.position, plain.address)
    assert gathered.position == TapePosition(volume=1, file_number=0, block_number=25)
    assert gathered.end_blocks_needed == 3
    plain.finish(pad=bytes(TP_BSIZE))
    gathered.finish(pad=bytes(TP_BSIZE))
    assert (tmp_path / "gathered").read_bytes() == (tmp_path / "plain").read_bytes()
    assert (tmp_path / "plain").stat().st_size == 260 * TP_BSIZE


_BLOCK_KINDS = st.sampled_from(["zero", "zero-but-last", "zero-but-first", "random", "text"])


def _block(kind: str, rnd: random.Random) -> bytes:
    if kind == "zero":
        return bytes(TP_BSIZE)
    if kind == "zero-but-last":
        return bytes(TP_BSIZE - 1) + b"\x01"
    if kind == "zero-but-first":
        return b"\x01" + bytes(TP_BSIZE - 1)
    if kind == "random":
        return rnd.randbytes(TP_BSIZE)
    return (b"text\0" * TP_BSIZE)[:TP_BSIZE]


@given(st.lists(_BLOCK_KINDS, max_size=80), st.integers(0, 2**32))
@settings(max_examples=150, deadline=None)
def test_zero_block_check_is_exact(kinds: list[str], seed: int) -> None:
    """The aligned check finds exactly the all-zero 1 KiB blocks, and no
    zero run that straddles two blocks."""
    rnd = random.Random(seed)
    blocks = [_block(k, rnd) for k in kinds]
    assert has_zero_block(b"".join(blocks)) == any(b == bytes(TP_BSIZE) for b in blocks)
    straddle = b"\x01" * (TP_BSIZE // 2) + bytes(TP_BSIZE) + b"\x01" * (TP_BSIZE // 2)
    assert not has_zero_block(straddle)
