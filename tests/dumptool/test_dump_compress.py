"""pydump -z[level] and -j[level]: compressed images the real restore 0.4b47 reads.

The real ``restore`` (-t, -r, -C, -M, from a file, a pipe and a loopback
tape through pyrmt) is the format oracle, pyrestore the second reader; the
record layer (first record as is, prefixes, stored records, tape blocks of
their own length, counting) is checked without the real tools.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import console_script
from dumptool.cli.pydump import _cluster_flags
from dumptool.compression import CompressingSink, CompressingVolumes, DecompressingSource, RecordCompressor, ratio_line
from dumptool.dump import Dump, DumpOptions
from dumptool.errors import DumpError, FormatError
from dumptool.format import DR_COMPRESSED, TP_BSIZE, ByteOrder, Header, RecordType, parse_qfa, volume_header
from dumptool.format.constants import COMPRESS_BZLIB, COMPRESS_LZO, COMPRESS_ZLIB, TAPEBUF_PREFIX
from dumptool.format.tapebuf import unpack_tapebuf
from dumptool.medium import NewVolume, RecordReader, RecordWriter, Source, VolumeRequest, as_source, open_source
from samples import RESTORE, fake_rsh, listing, record_sizes, restore_both_cartridges, tape_copy
from samples import real_restore as restore
from snapdump.exits import CommandFailed
from tapelib import Shelf, open_device
from test_compression import records_of
from test_pydump import assert_same_tree, env, make_tree, pydump, pyrestore, pyrestore_into

needs_restore = pytest.mark.skipif(not os.access(RESTORE, os.X_OK), reason="real /sbin/restore not installed")



@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("ztree") / "src"
    src.mkdir()
    make_tree(src)
    (src / "random.bin").write_bytes(os.urandom(150 * 1024 + 5))  # records that do not compress
    os.utime(src / "random.bin", (1_700_000_000, 1_700_000_000))
    return src


class _BytesSource(Source):
    """A byte string as a record source."""

    name = "bytes"

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        chunk, self._data = self._data[:32 * TP_BSIZE], self._data[32 * TP_BSIZE:]
        return chunk

    def close(self) -> None:
        pass


def headers_of(image: bytes) -> list[Header]:
    """The headers of a plain or compressed image, read back by the record reader."""
    found = []
    for block in RecordReader(DecompressingSource(_BytesSource(image))):
        try:
            found.append(Header.unpack(block, ByteOrder.LITTLE))
        except FormatError:
            continue
    return found


# -- flags ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv,rest,chosen", [
    (["-0", "-z", "-f", "x", "s"], ["-0", "-f", "x", "s"], (COMPRESS_ZLIB, 2)),
    (["-z6", "s"], ["s"], (COMPRESS_ZLIB, 6)),
    (["-0z4", "s"], ["-0", "s"], (COMPRESS_ZLIB, 4)),
    (["-j", "s"], ["s"], (COMPRESS_BZLIB, 2)),
    (["-z", "-j9", "s"], ["s"], (COMPRESS_BZLIB, 9)),          # the last one wins, as in dump
    (["-z", "5"], ["5"], (COMPRESS_ZLIB, 2)),                  # -z 5: the level must be attached
    (["-f", "-z", "s"], ["-f", "-z", "s"], None),              # -f's value, not a flag
    (["-uf-j", "s"], ["-uf-j", "s"], None),                    # likewise in a cluster
    (["-L", "x", "--", "-z"], ["-L", "x", "--", "-z"], None),
])
def test_compression_flags_are_parsed_as_dump_parses_them(argv, rest, chosen) -> None:
    # the level digits (-0) come out of the same clusters in the same pass
    levels = [a for a in rest if a.startswith("-") and a[1:].isdigit()]
    assert _cluster_flags(argv) == ([a for a in rest if a not in levels], chosen,
                                    "".join(a[1:] for a in levels) or None)


@pytest.mark.parametrize("flag,message", [
    ("-z12", "compress level must be between 1 and 9"),
    ("-j0", "compress level must be between 1 and 9"),
    ("-zq", "illegal compress level -- q"),
    ("-y", "-y (lzo) is not supported; use -z or -j"),
])
def test_bad_levels_and_lzo_are_refused_in_one_line(tmp_path: Path, flag: str, message: str) -> None:
    with pytest.raises(CommandFailed, match=message.replace("(", r"\(").replace(")", r"\)")):
        _cluster_flags(["-0", flag, "src"])
    done = pydump("-0", flag, "-f", str(tmp_path / "x"), str(tmp_path), check=False)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [f"pydump: {message}"]
    assert not (tmp_path / "x").exists()


def test_ratio_line_rounds_up_as_dump_does() -> None:
    assert ratio_line(960, 495954) == "960kB uncompressed, 484kB compressed, 1.984:1"  # a real dump -z's figures


# -- the record layer ----------------------------------------------------------------------------


def _records(ntrec: int) -> list[bytes]:
    """Five records: a compressed image's TS_TAPE first (what tells a reader), then text,
    random bytes (stored as is), text and zeros."""
    text = (b"all work and no play makes jack a dull boy\n" * 2000)[:ntrec * TP_BSIZE]
    tape = volume_header(date=1_700_000_000, ntrec=ntrec)
    head = tape.derive(c_flags=tape.c_flags | DR_COMPRESSED).pack()
    return [head + text[TP_BSIZE:], text, os.urandom(ntrec * TP_BSIZE), text, bytes(ntrec * TP_BSIZE)]


@pytest.mark.parametrize("method", [COMPRESS_ZLIB, COMPRESS_BZLIB])
def test_a_file_holds_a_plain_first_record_then_framed_ones(tmp_path: Path, method: int) -> None:
    records = _records(10)
    compressor = RecordCompressor(method, 2)
    path = tmp_path / "image"
    with open(path, "wb") as out:
        writer = RecordWriter(CompressingSink(out, compressor, 64 * 1024), 10, coalesce=64 * 1024)
        for record in records:
            writer.write(record)
        writer.finish()
    data = path.read_bytes()
    assert data[:10 * TP_BSIZE] == records[0]
    at, framed = 10 * TP_BSIZE, []
    while at < len(data):
        buf = unpack_tapebuf(data[at:at + TAPEBUF_PREFIX])
        framed.append(buf)
        at += TAPEBUF_PREFIX + buf.length
    assert at == len(data) == compressor.bytes_written == compressor.volume_bytes
    assert [b.compressed for b in framed] == [True, False, True, True]  # the random record is stored
    assert {b.method for b in framed} == {method} and framed[1].length == 10 * TP_BSIZE
    assert compressor.stored == 1
    assert len(data) < sum(map(len, records)) // 2
    with open(path, "rb") as f:
        reader = RecordReader(DecompressingSource(as_source(f)))
        assert b"".join(reader) == b"".join(records)


def test_on_a_tape_each_record_is_one_block_of_its_own_length(nst0: str) -> None:
    records = _records(16)
    writer = RecordWriter(CompressingSink(open_device(nst0, writable=True), RecordCompressor(COMPRESS_ZLIB, 6)), 16)
    addresses = []
    for record in records:
        addresses.append(writer.address)
        writer.write(record)
    writer.finish()
    assert addresses == [0, 1, 2, 3, 4]  # one tape block per record: the QFA positions
    with open_device(nst0) as tape:
        tape.rewind()
        sizes = []
        while block := tape.read(64 * TP_BSIZE):
            sizes.append(len(block))
    assert sizes[0] == 16 * TP_BSIZE and sizes[2] == 16 * TP_BSIZE + TAPEBUF_PREFIX
    assert max(sizes[1], sizes[3], sizes[4]) < 2 * TP_BSIZE


def test_each_volume_a_compressing_volume_change_mounts_starts_with_a_plain_record(tmp_path: Path) -> None:
    """The caller puts compression around the writer's volume change: every
    new volume's sink compresses too, its first record (header and all)
    written plain, as dump's volumes start; read back through a
    DecompressingSource each volume gives the blocks written."""
    ntrec = 10
    records = _records(ntrec)
    head = volume_header(date=1_700_000_000, ntrec=ntrec)
    header = head.derive(c_volume=2, c_flags=head.c_flags | DR_COMPRESSED).pack()

    class Files:
        def next_volume(self, request: VolumeRequest) -> NewVolume:
            return NewVolume(open(tmp_path / f"vol{request.volume}", "wb"), header)

    compressor = RecordCompressor(COMPRESS_ZLIB, 2)
    writer = RecordWriter(CompressingSink(open(tmp_path / "vol1", "wb"), compressor, 64 * 1024), ntrec,
                          CompressingVolumes(Files(), compressor, 64 * 1024), coalesce=64 * 1024)
    for record in records[:3]:
        writer.write(record)
    writer.change_volume()
    second = compressor.bytes_written
    for record in records[3:]:
        writer.write(record)
    writer.write(bytes(TP_BSIZE * (ntrec - 1)))  # after the header: whole records again
    writer.finish()
    vol2 = (tmp_path / "vol2").read_bytes()
    assert vol2[:ntrec * TP_BSIZE] == header + records[3][:(ntrec - 1) * TP_BSIZE]  # plain
    assert [b.compressed for _, b in records_of(vol2)] == [True, True]
    assert compressor.volume_bytes == len(vol2) and compressor.bytes_written == second + len(vol2)
    for volume, blocks in ((1, records[:3]), (2, [header] + records[3:] + [bytes(TP_BSIZE * (ntrec - 1))])):
        with RecordReader(DecompressingSource(open_source(str(tmp_path / f"vol{volume}")))) as reader:
            assert b"".join(reader) == b"".join(blocks)


# -- pydump -> the real restore ------------------------------------------------------------------


@needs_restore
@pytest.mark.parametrize("flag,ntrec,name", [("-z", 10, "zlib"), ("-j", 64, "bzlib"), ("-z9", 64, "zlib")])
def test_compressed_file_lists_restores_and_compares(tmp_path: Path, tree: Path, flag: str, ntrec: int,
                                                     name: str) -> None:
    image, plain = tmp_path / "img.z", tmp_path / "img"
    done = pydump("-0", flag, "-b", str(ntrec), "-f", str(image), str(tree))
    err = done.stderr.decode()
    level = flag[2:] or "2"
    assert f"  DUMP: Writing {ntrec} Kilobyte records\n  DUMP: Compressing output at transformation level " \
           f"{level} ({name})\n" in err
    assert "  DUMP: Volume 1 " in err and "kB compressed, " in err and "  DUMP: Wrote " in err
    pydump("-0", "--quiet", "-b", str(ntrec), "-f", str(plain), str(tree))
    data = image.read_bytes()
    assert len(data) < len(plain.read_bytes()) * 2 // 3
    wrote = [line for line in err.splitlines() if "DUMP: Wrote " in line][0]
    assert f"{len(plain.read_bytes()) // TP_BSIZE}kB uncompressed, {len(data) // 1024}kB compressed" in wrote
    heads = headers_of(data)
    assert heads[0].c_type == RecordType.TS_TAPE and heads[0].c_ntrec == ntrec
    assert all(h.c_flags & DR_COMPRESSED for h in heads)  # dump never clears it
    prefixes = [buf for _, buf in records_of(data)]
    assert any(b.compressed for b in prefixes) and any(not b.compressed for b in prefixes)

    blocking = ["-b", str(ntrec)] if ntrec > 32 else []  # restore's own rule for a compressed file
    listed = restore("-t", *blocking, "-f", str(image), cwd=tmp_path, tmp=tmp_path)
    assert "Dump tape is compressed." in listed.stderr
    assert set(listing(listed.stdout)) == {"."} | {f"./{p.relative_to(tree)}" for p in tree.rglob("*")}
    out = tmp_path / "out"
    out.mkdir()
    restore("-r", "-y", *blocking, "-f", str(image), cwd=out, tmp=tmp_path)
    assert_same_tree(tree, out)
    compared = restore("-C", *blocking, "-D", str(tree), "-f", str(image), cwd=tmp_path, tmp=tmp_path,
                       check=False)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    ours = tmp_path / "ours"
    ours.mkdir()
    done = pyrestore("-r", "-f", str(image), cwd=ours)
    assert done.returncode == 0, done.stderr
    assert_same_tree(tree, ours)


@needs_restore
def test_compressed_to_a_pipe(tmp_path: Path, tree: Path) -> None:
    dumped = pydump("-0", "--quiet", "-j", "-f", "-", str(tree))
    assert dumped.stdout[:TP_BSIZE] and Header.unpack(dumped.stdout[:TP_BSIZE]).c_flags & DR_COMPRESSED
    out = tmp_path / "out"
    out.mkdir()
    theirs = subprocess.run([RESTORE, "-r", "-y", "-f", "-"], input=dumped.stdout, cwd=out, capture_output=True,
                            env=dict(os.environ, TMPDIR=str(tmp_path)), timeout=120)
    assert theirs.returncode == 0, theirs.stderr.decode()
    assert_same_tree(tree, out)
    ours = tmp_path / "ours"
    ours.mkdir()
    done = subprocess.run([console_script("pyrestore"), "-x", "-f", "-", "dir1"], input=dumped.stdout, cwd=ours,
                          capture_output=True, env=env(), timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert (ours / "dir1" / "big.bin").read_bytes() == (tree / "dir1" / "big.bin").read_bytes()


@needs_restore
def test_compressed_to_a_tape_read_by_restore_through_pyrmt(tmp_path: Path, tree: Path, nst0: str) -> None:
    pydump("-0", "--quiet", "-z", "-b", "64", "-f", nst0, str(tree))
    sizes = record_sizes(nst0, 128 * TP_BSIZE)
    assert sizes[0] == 64 * TP_BSIZE and len(set(sizes)) > 2  # records of varying length
    rsh = fake_rsh(tmp_path, console_script("pyrmt"))
    out = tmp_path / "out"
    out.mkdir()
    theirs = subprocess.run([RESTORE, "-r", "-y", "-b", "64", "-f", f"localhost:{nst0}"], cwd=out, capture_output=True,
                            text=True, env=dict(env(), RSH=str(rsh), RMT=console_script("pyrmt"),
                                                TMPDIR=str(tmp_path)), stdin=subprocess.DEVNULL, timeout=120)
    assert theirs.returncode == 0, theirs.stderr
    assert_same_tree(tree, out)
    with open_device(nst0) as tape:
        tape.rewind()
    assert_same_tree(tree, pyrestore_into(tmp_path / "ours", "-f", nst0))


@needs_restore
def test_compressed_volumes_stay_under_dash_B(tmp_path: Path, tree: Path) -> None:
    done = pydump("-0", "-z", "-M", "-B", "60", "-f", str(tmp_path / "vol"), str(tree))
    volumes = sorted(tmp_path.glob("vol0*"))
    assert len(volumes) >= 3
    err = done.stderr.decode()
    for n, vol in enumerate(volumes, 1):
        data = vol.read_bytes()
        assert len(data) <= 60 * 1024  # -B counts compressed bytes
        head = Header.unpack(data[:TP_BSIZE])
        assert (head.c_type, head.c_volume, bool(head.c_flags & DR_COMPRESSED)) == (RecordType.TS_TAPE, n, True)
        assert f"  DUMP: Volume {n} " in err and f"{len(data) // 1024}kB compressed" in err
    # ... and not blocks: a volume of compressible data holds more than 60 KiB of the stream
    uncompressed = [int(line.split("kB uncompressed")[0].split()[-1]) for line in err.splitlines()
                    if "kB uncompressed" in line and "DUMP: Volume " in line]
    assert len(uncompressed) == len(volumes) and max(uncompressed) > 60
    out = tmp_path / "out"
    out.mkdir()
    restore("-r", "-y", "-M", "-f", str(tmp_path / "vol"), cwd=out, tmp=tmp_path)
    assert_same_tree(tree, out)
    assert_same_tree(tree, pyrestore_into(tmp_path / "ours", "-y", "-M", "-f", tmp_path / "vol"))


@needs_restore
def test_qfa_of_a_compressed_file_points_at_record_prefixes(tmp_path: Path, tree: Path) -> None:
    image, qfa_file = tmp_path / "q.z", tmp_path / "q.qfa"
    pydump("-0", "--quiet", "-j", "-Q", str(qfa_file), "-f", str(image), str(tree))
    starts = {at for at, _ in records_of(image.read_bytes())} | {0}
    qfa = parse_qfa(qfa_file.read_text())
    assert len(qfa.entries) > 3 and all(e.position in starts for e in qfa.entries)
    out = tmp_path / "out"
    out.mkdir()
    theirs = restore("-x", "-y", "-Q", str(qfa_file), "-f", str(image), "./random.bin", cwd=out, tmp=tmp_path)
    assert (out / "random.bin").read_bytes() == (tree / "random.bin").read_bytes(), theirs.stderr
    done = pyrestore("-x", "-Q", str(qfa_file), "-f", str(image), "dir1/sub/file", cwd=out)
    assert done.returncode == 0, done.stderr
    assert (out / "dir1" / "sub" / "file").read_bytes() == b"sub\n"


@needs_restore
def test_a_full_cartridge_goes_on_compressed_on_the_next(tmp_path: Path, shelf: Shelf, nst0: str) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "big").write_bytes(os.urandom(5 * 1024 * 1024))  # stored records: more than TEST01 holds
    (src / "after").write_bytes(b"after\n" * 1000)
    shelf.new_cartridge("TEST02", capacity=8 * 1024 * 1024)
    done = pydump("-0", "-z", "-f", nst0, str(src))
    assert "TEST02" in done.stderr.decode()
    second = tape_copy(nst0)
    head = Header.unpack(second[:TP_BSIZE])
    assert (head.c_type, head.c_volume, bool(head.c_flags & DR_COMPRESSED)) == (RecordType.TS_TAPE, 2, True)
    assert_same_tree(src, restore_both_cartridges(shelf, nst0, tmp_path))


def test_the_engine_refuses_what_the_flags_refuse(tmp_path: Path) -> None:
    for method, level, message in ((COMPRESS_ZLIB, 10, "compress level must be between 1 and 9"),
                                   (COMPRESS_LZO, 2, "zlib and bzip2 only")):
        with pytest.raises(DumpError, match=message):
            Dump(DumpOptions(source=str(tmp_path), output=str(tmp_path / "x"), compress=method,
                             compress_level=level))
