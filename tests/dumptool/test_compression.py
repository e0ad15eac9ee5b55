"""pyrestore reads the compressed images of the real dump 0.4b47 (-z, -j, -y).

One ext4 loop image of a sample tree is dumped by the real dump with each
method, to files (blocking factors 10 and 32, one volume or several) and
through pyrmt to a loopback tape, where compressed records are tape blocks
of varying length.  The source tree is the oracle for what pyrestore puts
back, the real ``restore -t`` for listings.  The record layer itself
(struct tapebuf, the LZO decoder, damaged records) is tested without root.
"""

from __future__ import annotations

import ctypes
import os
import random
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import console_script
from dumptool.compression import DecompressingSource
from dumptool.errors import FormatError, MediumError
from dumptool.format import DR_COMPRESSED, TP_BSIZE, ByteOrder, Header, RecordType, parse_qfa
from dumptool.format.constants import COMPRESS_BZLIB, COMPRESS_LZO, COMPRESS_ZLIB, TAPEBUF_PREFIX
from dumptool.format.lzo1x import LzoError, lzo1x_decompress
from dumptool.format.tapebuf import TapeBuf, decode_payload, pack_tapebuf, unpack_tapebuf
from dumptool.medium import RecordReader, open_source
from samples import (DUMP, ext4_volume, fake_rsh, listing, needs_real_dump, plant_common_files, real_restore,
                     record_sizes)
from tapelib import open_device
from test_pyrestore import assert_same_tree
from test_pydump import pyrestore, pyrestore_into


METHODS = {"-z": COMPRESS_ZLIB, "-j": COMPRESS_BZLIB, "-y": COMPRESS_LZO}
DATE = 1_700_000_000



def records_of(image: bytes) -> Iterator[tuple[int, TapeBuf]]:
    """(offset, prefix) of each record after the first in a compressed image file."""
    ntrec = Header.unpack(image[:TP_BSIZE], ByteOrder.LITTLE).c_ntrec
    at = ntrec * TP_BSIZE
    while at < len(image):
        buf = unpack_tapebuf(image[at:at + TAPEBUF_PREFIX])
        yield at, buf
        at += TAPEBUF_PREFIX + buf.length


# --- the real dump's images ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, object, Path]]:
    """``(source tree, loop device with an ext4 copy of it, work folder)``: a
    tree with data that compresses, data that does not, and attributes."""
    if not (os.geteuid() == 0 and os.access(DUMP, os.X_OK)):
        pytest.skip("needs root and /sbin/dump")
    base = tmp_path_factory.mktemp("compressed")
    src = base / "src"
    src.mkdir()
    plant_common_files(src)
    (src / "random.bin").write_bytes(os.urandom(150 * 1024 + 77))  # records stored as is
    os.setxattr(src / "hello.txt", "user.note", b"compressed")
    os.chown(src / "dir1", 1234, 5678)
    os.chmod(src / "dir1" / "sub" / "file", 0o640)
    for n, p in enumerate(sorted(src.rglob("*"))):
        os.utime(p, (DATE + n, DATE - 86400 + n), follow_symlinks=False)
    with ext4_volume(src, base / "fs.img") as loop:
        yield src, loop, base


@pytest.fixture(scope="module")
def images(volume) -> dict[str, Path]:
    """Real compressed dumps to files: each method at -b 10, zlib at -b 32."""
    _, loop, base = volume
    made = {flag: loop.dump(0, base / f"img{flag}", flag) for flag in METHODS}
    made["-z9 -b 32"] = loop.dump(0, base / "img-b32", "-z9", "-b", "32")
    return made


@needs_real_dump
@pytest.mark.parametrize("flag", ["-z", "-j", "-y", "-z9 -b 32"])
def test_rebuild_of_a_real_compressed_dump(volume, images, flag, tmp_path) -> None:
    src, _, _ = volume
    data = images[flag].read_bytes()
    head = Header.unpack(data[:TP_BSIZE], ByteOrder.LITTLE)
    assert head.c_flags & DR_COMPRESSED
    prefixes = [buf for _, buf in records_of(data)]
    assert {b.method for b in prefixes} == {METHODS[flag.split()[0][:2]]}
    assert any(b.compressed for b in prefixes) and any(not b.compressed for b in prefixes)  # random.bin
    done = pyrestore("-r", "-f", str(images[flag]), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_tree(src, tmp_path)
    assert os.getxattr(tmp_path / "hello.txt", "user.note") == b"compressed"


@needs_real_dump
def test_listing_and_compare_of_real_compressed_dumps(volume, images, tmp_path) -> None:
    ours = pyrestore("-t", "-f", str(images["-y"]), cwd=tmp_path)
    assert ours.returncode == 0, ours.stderr
    theirs = real_restore("-t", "-f", str(images["-y"]), cwd=tmp_path, tmp=tmp_path)
    assert listing(ours.stdout) == listing(theirs.stdout)
    assert "./random.bin" in listing(ours.stdout)
    tree = tmp_path / "tree"  # the file system as the zlib image rebuilds it, compared with the bzip2 one
    tree.mkdir()
    assert pyrestore("-r", "-f", str(images["-z"]), cwd=tree).returncode == 0
    compare = pyrestore("-C", "-D", str(tree), "-f", str(images["-j"]), cwd=tmp_path)
    assert compare.returncode == 0, compare.stdout + compare.stderr
    data = (tree / "random.bin").read_bytes()
    (tree / "random.bin").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    compare = pyrestore("-C", "-D", str(tree), "-f", str(images["-j"]), cwd=tmp_path)
    assert compare.returncode == 2 and "./random.bin: tape and disk copies are different" in compare.stderr


@needs_real_dump
def test_a_compressed_dump_read_from_a_pipe(volume, images, tmp_path) -> None:
    src, _, _ = volume
    done = subprocess.run([console_script("pyrestore"), "-x", "-f", "-", "dir1"], cwd=tmp_path,
                          input=images["-j"].read_bytes(), capture_output=True, timeout=120)  # a pipe
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "dir1" / "big.bin").read_bytes() == (src / "dir1" / "big.bin").read_bytes()
    assert (tmp_path / "dir1").stat().st_uid == 1234


@needs_real_dump
def test_compressed_volumes_with_dash_M(volume, tmp_path) -> None:
    src, loop, _ = volume
    loop.dump(0, tmp_path / "vol", "-y", "-M", "-B", "200")
    volumes = sorted(tmp_path.glob("vol0*"))
    assert len(volumes) >= 2
    # every volume starts with a plain record holding its TS_TAPE
    for n, vol in enumerate(volumes, 1):
        head = Header.unpack(vol.read_bytes()[:TP_BSIZE], ByteOrder.LITTLE)
        assert (head.c_type, head.c_volume, bool(head.c_flags & DR_COMPRESSED)) == (RecordType.TS_TAPE, n, True)
    assert_same_tree(src, pyrestore_into(tmp_path / "out", "-y", "-M", "-f", tmp_path / "vol"))


@needs_real_dump
def test_a_compressed_dump_on_a_tape_has_records_of_varying_length(volume, nst0, tmp_path) -> None:
    src, loop, _ = volume
    rsh = fake_rsh(tmp_path, console_script("pyrmt"))
    wrote = subprocess.run([DUMP, "-0", "-z", "-b", "16", "-f", f"localhost:{nst0}", loop.dev],
                           env=dict(os.environ, RSH=str(rsh), RMT=console_script("pyrmt")),
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert wrote.returncode == 0, wrote.stderr
    sizes = record_sizes(nst0, 64 * TP_BSIZE)
    assert sizes[0] == 16 * TP_BSIZE
    assert min(sizes[1:]) < 4 * TP_BSIZE and max(sizes) == 16 * TP_BSIZE + TAPEBUF_PREFIX  # stored as is
    assert_same_tree(src, pyrestore_into(tmp_path / "out", "-f", nst0))


@needs_real_dump
def test_qfa_positions_of_a_compressed_file_are_byte_offsets_of_records(volume, tmp_path) -> None:
    src, loop, _ = volume
    qfa_file = tmp_path / "map.qfa"
    image = loop.dump(0, tmp_path / "q.dump", "-z", "-Q", str(qfa_file))
    data = image.read_bytes()
    starts = {at for at, _ in records_of(data)} | {0}
    qfa = parse_qfa(qfa_file.read_text())
    assert qfa.entries and all(e.position in starts for e in qfa.entries)
    done = pyrestore("-x", "-Q", str(qfa_file), "-f", str(image), "random.bin", "dir1/sub/file", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "random.bin").read_bytes() == (src / "random.bin").read_bytes()
    assert (tmp_path / "dir1" / "sub" / "file").read_bytes() == b"sub\n"


@needs_real_dump
def test_a_corrupt_compressed_record_is_reported_and_the_rest_restored(volume, images, tmp_path) -> None:
    src, _, _ = volume
    data = bytearray(images["-z"].read_bytes())
    # damage the payload of a compressed record in the middle of big.bin's data
    victims = [(at, buf) for at, buf in records_of(bytes(data)) if buf.compressed]
    at, buf = victims[len(victims) // 3]
    middle = at + TAPEBUF_PREFIX + buf.length // 2
    data[middle:middle + 8] = bytes(b ^ 0x5A for b in data[middle:middle + 8])
    bad = tmp_path / "bad.dump"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    done = pyrestore("-r", "-f", str(bad), cwd=out)
    assert done.returncode == 1
    assert "decompression error in record" in done.stderr and "zlib" in done.stderr
    assert "Traceback" not in done.stderr
    assert (out / "random.bin").read_bytes() == (src / "random.bin").read_bytes()
    assert (out / "hello.txt").read_bytes() == b"hello\n"


@needs_real_dump
def test_a_broken_record_prefix_ends_the_volume_with_a_message(volume, images, tmp_path) -> None:
    data = bytearray(images["-j"].read_bytes())
    at, _ = list(records_of(bytes(data)))[-3]
    data[at:at + TAPEBUF_PREFIX] = pack_tapebuf(TapeBuf(True, COMPRESS_BZLIB, 1 << 27))
    bad = tmp_path / "bad.dump"
    bad.write_bytes(bytes(data))
    done = pyrestore("-x", "-f", str(bad), cwd=tmp_path)
    assert done.returncode == 1
    assert "bad prefix" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "hello.txt").read_bytes() == b"hello\n"


# --- the record layer, without root ---------------------------------------------------------------


def _tape_header(ntrec: int, flags: int = 0x3 | DR_COMPRESSED) -> bytes:
    return Header(c_type=RecordType.TS_TAPE, c_date=DATE, c_volume=1, c_flags=flags, c_ntrec=ntrec).pack()


def _compressed_image(records: list[bytes], ntrec: int, method: int = COMPRESS_ZLIB) -> bytes:
    first = _tape_header(ntrec) + bytes((ntrec - 1) * TP_BSIZE)
    out = bytearray(first)
    for record in records:
        payload = zlib.compress(record) if method == COMPRESS_ZLIB else record
        out += pack_tapebuf(TapeBuf(method == COMPRESS_ZLIB, method, len(payload))) + payload
    return bytes(out)


def test_tapebuf_word_layout() -> None:
    word = pack_tapebuf(TapeBuf(True, COMPRESS_LZO, 1234))
    assert struct.unpack("<I", word)[0] == 1 | 2 << 1 | 1234 << 4
    assert unpack_tapebuf(word) == TapeBuf(True, COMPRESS_LZO, 1234)
    assert unpack_tapebuf(word[::-1], ByteOrder.BIG) == TapeBuf(True, COMPRESS_LZO, 1234)


def test_decode_payload_refuses_what_is_not_a_whole_record() -> None:
    with pytest.raises(FormatError, match="zlib data error"):
        decode_payload(TapeBuf(True, COMPRESS_ZLIB, 5), b"xxxxx", 4 * TP_BSIZE)
    short = zlib.compress(bytes(100))
    with pytest.raises(FormatError, match="100 bytes"):
        decode_payload(TapeBuf(True, COMPRESS_ZLIB, len(short)), short, 4 * TP_BSIZE)
    big = zlib.compress(bytes(8 * TP_BSIZE))  # more than a record: bounded, not inflated
    with pytest.raises(FormatError):
        decode_payload(TapeBuf(True, COMPRESS_ZLIB, len(big)), big, 4 * TP_BSIZE)
    with pytest.raises(FormatError, match="method 5"):
        decode_payload(TapeBuf(True, 5, 3), b"abc", 4 * TP_BSIZE)


def test_lzo_decoder_handles_literal_runs_matches_and_overlaps() -> None:
    # built by hand from the LZO1X rules: a first byte of 17 + 4 (4 literals), a
    # 32..63 match of length 2 + 6 from 4 bytes back (it overlaps what it writes),
    # then the end marker (a 16..31 match at distance 16384)
    stream = bytes([17 + 4]) + b"abcd" + bytes([0x20 | 6, (3 << 2) & 0xFF, 0]) + b"\x11\x00\x00"
    assert lzo1x_decompress(stream, 100) == b"abcd" + b"abcdabcd"
    with pytest.raises(LzoError, match="more than"):
        lzo1x_decompress(stream, 10)
    with pytest.raises(LzoError, match="before the start"):
        lzo1x_decompress(bytes([17 + 1]) + b"a" + bytes([0x20 | 1, 40 << 2, 0]) + b"\x11\x00\x00", 100)
    with pytest.raises(LzoError, match="without its end marker"):
        lzo1x_decompress(bytes([17 + 4]) + b"abcd", 100)


def _liblzo2() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("liblzo2.so.2")  # what dump and restore are linked with
    except OSError:
        return None


@pytest.mark.skipif(_liblzo2() is None, reason="liblzo2 (installed with dump) not found")
@pytest.mark.parametrize("compressor,workmem", [("lzo1x_1_compress", 16384 * 8),
                                                 ("lzo1x_999_compress", 14 * 16384 * 8)])
def test_lzo_decoder_matches_liblzo2(compressor: str, workmem: int) -> None:
    lib = _liblzo2()
    rng = random.Random(7)
    samples = [b"", b"a", bytes(5), os.urandom(3000), bytes(40_000), bytes((i * 7) % 251 for i in range(20_000)),
               bytes(rng.randrange(4) for _ in range(30_000)),
               b"".join(rng.choice([b"hello ", b"dump ", os.urandom(3), b"x" * rng.randint(1, 300)])
                        for _ in range(2000))]
    for data in samples:
        out = ctypes.create_string_buffer(len(data) + len(data) // 16 + 67)
        size = ctypes.c_size_t(len(out))
        assert getattr(lib, compressor)(data, ctypes.c_size_t(len(data)), out, ctypes.byref(size),
                                        ctypes.create_string_buffer(workmem)) == 0
        assert lzo1x_decompress(out.raw[:size.value], len(data)) == data


def test_reader_decompresses_a_file_and_zero_fills_a_bad_record(tmp_path: Path) -> None:
    ntrec = 4
    records = [bytes([n]) * (ntrec * TP_BSIZE) for n in range(1, 4)]
    image = bytearray(_compressed_image(records, ntrec))
    path = tmp_path / "c.dump"
    path.write_bytes(bytes(image))
    with RecordReader(DecompressingSource(open_source(str(path)))) as reader:
        blocks = list(reader)
    assert len(blocks) == 4 * ntrec and blocks[ntrec] == records[0][:TP_BSIZE]
    assert isinstance(reader.source, DecompressingSource) and reader.source.compressed

    # the second record's payload damaged: reported, zeros, then the third record
    second = ntrec * TP_BSIZE + TAPEBUF_PREFIX + len(zlib.compress(records[0]))
    image[second + TAPEBUF_PREFIX + 2] ^= 0xFF
    path.write_bytes(bytes(image))
    lost: list[str] = []
    with RecordReader(DecompressingSource(open_source(str(path)), lost.append)) as reader:
        blocks = list(reader)
    assert len(lost) == 1 and "record 3" in lost[0]
    assert blocks[2 * ntrec] == bytes(TP_BSIZE) and blocks[3 * ntrec] == records[2][:TP_BSIZE]
    with RecordReader(DecompressingSource(open_source(str(path)))) as reader, \
            pytest.raises(MediumError, match="decompression"):
        list(reader)


def test_reader_passes_a_plain_image_through(tmp_path: Path) -> None:
    image = _tape_header(4, flags=0x3) + bytes(7 * TP_BSIZE)
    path = tmp_path / "p.dump"
    path.write_bytes(image)
    with RecordReader(DecompressingSource(open_source(str(path)))) as reader:
        assert b"".join(reader) == image
        assert reader.source.compressed is False


def test_reader_on_a_tape_reads_blocks_of_their_own_length_and_skips_a_bad_one(nst0: str) -> None:
    ntrec = 4
    records = [bytes([n]) * (ntrec * TP_BSIZE) for n in range(1, 4)]
    with open_device(nst0, writable=True) as drive:
        drive.write(_tape_header(ntrec) + bytes((ntrec - 1) * TP_BSIZE))
        for n, record in enumerate(records):
            payload = bytearray(zlib.compress(record))
            if n == 1:
                payload[len(payload) // 2] ^= 0xFF
            drive.write(pack_tapebuf(TapeBuf(True, COMPRESS_ZLIB, len(payload))) + payload)
        stored = os.urandom(ntrec * TP_BSIZE)  # as dump stores what does not compress: 4 bytes longer
        drive.write(pack_tapebuf(TapeBuf(False, COMPRESS_ZLIB, len(stored))) + stored)
    with open_device(nst0) as drive:
        drive.rewind()
    lost: list[str] = []
    with RecordReader(DecompressingSource(open_source(nst0), lost.append)) as reader:
        blocks = list(reader)
        assert reader.record_size == ntrec * TP_BSIZE
    assert len(blocks) == 5 * ntrec and len(lost) == 1 and "record 3" in lost[0]
    assert blocks[ntrec] == records[0][:TP_BSIZE] and blocks[2 * ntrec] == bytes(TP_BSIZE)
    assert blocks[3 * ntrec] == records[2][:TP_BSIZE] and b"".join(blocks[4 * ntrec:]) == stored


def test_a_decompressing_source_moves_the_drive_and_decides_again_on_the_next_image(nst0: str) -> None:
    """The wrapper passes the drive's movements on (no reaching for the
    drive behind it): spaced to a compressed image in the tape's second
    file it decodes it, rewound to the plain first file it reads that plain."""
    ntrec = 4
    plain = _tape_header(ntrec, flags=0x3) + bytes((ntrec - 1) * TP_BSIZE)
    record = bytes([7]) * (ntrec * TP_BSIZE)
    payload = zlib.compress(record)
    with open_device(nst0, writable=True) as drive:
        drive.write(plain)
        drive.write_filemarks(1)
        drive.write(_tape_header(ntrec) + bytes((ntrec - 1) * TP_BSIZE))
        drive.write(pack_tapebuf(TapeBuf(True, COMPRESS_ZLIB, len(payload))) + payload)
        drive.write_filemarks(1)
        drive.rewind()
    source = DecompressingSource(open_source(nst0))
    source.space_files(1)
    blocks = list(RecordReader(source))
    assert source.compressed and b"".join(blocks[ntrec:]) == record
    source.rewind()
    with RecordReader(source) as reader:
        assert b"".join(reader) == plain
    assert source.compressed is False
