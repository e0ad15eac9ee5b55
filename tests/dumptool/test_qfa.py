"""The QFA file (``-Q``): pydump writes Linux dump's map, pyrestore -x seeks with it.

The oracles: the real dump's QFA file follows the same rule from its own
image as ours does from ours, the real ``restore -Q`` extracts with our map
from our image, and pyrestore extracts with the real dump's map.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from dumptool.errors import FormatError
from dumptool.format import (
    DR_EXTATTRIBUTES,
    QFA_MAGIC,
    TP_BSIZE,
    Dinode,
    Header,
    QfaEntry,
    QfaMap,
    RecordType,
    parse_qfa,
    qfa_indexes,
    qfa_line,
    qfa_preamble,
    walk_image,
)
from samples import DATE, DUMP, needs_real_dump, plant_common_files, real_dump_of, real_restore, stamp_times, tape_copy
from test_pydump import pydump, pyrestore




def make_tree(root: Path) -> Path:
    """The common files, then enough small files after them that a seek saves reading."""
    root.mkdir()
    plant_common_files(root)
    (root / "many").mkdir()
    for i in range(40):
        (root / "many" / f"f{i:02d}").write_bytes(bytes([i]) * (20_000 + i))
    (root / "zlast").write_bytes(b"the last file\n")
    os.setxattr(root / "zlast", "user.note", b"late")
    stamp_times(root)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


def expected_qfa(image: bytes, volume: int = 1) -> list[QfaEntry]:
    """dump's rule applied to the bytes of one volume, as dump applies it to
    each record it writes: the first block that is a header
    :func:`qfa_indexes` takes, at the record's byte offset."""
    first = Header.unpack(image[:TP_BSIZE])
    size = first.c_ntrec * TP_BSIZE
    entries: list[QfaEntry] = []
    for offset in range(0, len(image), size):
        record = image[offset:offset + size]
        for i in range(0, len(record), TP_BSIZE):
            header = _header_in(record[i:i + TP_BSIZE])
            if header is not None and qfa_indexes(header, first.c_date):
                entries.append(QfaEntry(header.c_inumber, volume, offset))
                break
    return entries


def _header_in(block: bytes) -> Header | None:
    try:
        return Header.unpack(block)
    except FormatError:
        return None


# -- the format ----------------------------------------------------------------------------------


def test_preamble_and_lines_are_linux_dumps_text() -> None:
    assert qfa_preamble(1795614072) == "495115637697\n1.0\n1795614072\n\nino\ttapeno\ttapepos\n"
    assert qfa_line(QfaEntry(12, 1, 10240)) == "12\t1\t10240\n"


def test_parse_reads_back_what_is_written_and_finds_the_greatest_inode_at_or_below() -> None:
    entries = [QfaEntry(12, 1, 10240), QfaEntry(16, 1, 307200), QfaEntry(40, 2, 0)]
    qfa = parse_qfa(qfa_preamble(DATE) + "".join(qfa_line(e) for e in entries))
    assert qfa == QfaMap(DATE, tuple(entries))
    assert qfa.position_for(11) is None
    assert qfa.position_for(12) == entries[0]
    assert qfa.position_for(15) == entries[0]
    assert qfa.position_for(39) == entries[1]
    assert qfa.position_for(10**6) == entries[2]


@pytest.mark.parametrize("text", ["", "12345\n1.0\n1\n\nino\ttapeno\ttapepos\n",
                                  f"{QFA_MAGIC}\n2.0\n1\n\nino\ttapeno\ttapepos\n",
                                  f"{QFA_MAGIC}\n1.0\nyesterday\n\nino\ttapeno\ttapepos\n",
                                  f"{QFA_MAGIC}\n1.0\n1\n\nino\ttapeno\ttapepos\n12 1 0\n"])
def test_parse_refuses_what_is_not_a_qfa_file(text: str) -> None:
    with pytest.raises(FormatError):
        parse_qfa(text)


@pytest.mark.parametrize("mode,indexed", [
    (stat.S_IFREG | 0o644, True), (stat.S_IFLNK | 0o777, True), (stat.S_IFCHR | 0o600, True),
    (stat.S_IFIFO | 0o600, True), (stat.S_IFDIR | 0o755, False),
    # dump tests the directory bit, which these types share
    (stat.S_IFBLK | 0o600, False), (stat.S_IFSOCK | 0o600, False),
])
def test_only_headers_of_files_without_the_directory_bit_are_indexed(mode: int, indexed: bool) -> None:
    header = Header(c_type=RecordType.TS_INODE, c_date=DATE, c_inumber=5, c_dinode=Dinode(mode=mode))
    assert qfa_indexes(header, DATE) is indexed


def test_ea_records_addr_records_and_other_dumps_are_not_indexed() -> None:
    file = Dinode(mode=stat.S_IFREG | 0o644)
    assert not qfa_indexes(Header(c_type=RecordType.TS_INODE, c_date=DATE, c_inumber=5, c_dinode=file,
                                  c_flags=DR_EXTATTRIBUTES), DATE)
    assert not qfa_indexes(Header(c_type=RecordType.TS_ADDR, c_date=DATE, c_inumber=5, c_dinode=file), DATE)
    assert not qfa_indexes(Header(c_type=RecordType.TS_INODE, c_date=DATE - 1, c_inumber=5, c_dinode=file), DATE)


# -- pydump -Q ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ntrec", [10, 32])
def test_pydump_q_lists_the_first_file_header_of_each_record_at_its_byte_offset(
        tmp_path: Path, tree: Path, ntrec: int) -> None:
    image, qfa_file = tmp_path / "t.dump", tmp_path / "t.qfa"
    pydump("-0", "--quiet", "-b", str(ntrec), "-Q", str(qfa_file), "-f", str(image), str(tree))
    data = image.read_bytes()
    text = qfa_file.read_text()
    date = walk_image(data).__next__().header.c_date
    assert text.startswith(qfa_preamble(date))
    qfa = parse_qfa(text)
    assert list(qfa.entries) == expected_qfa(data)
    assert len(qfa.entries) > 10
    for entry in qfa.entries:  # each position is a record start holding that inode's header
        assert entry.position % (ntrec * TP_BSIZE) == 0
        record = data[entry.position:entry.position + ntrec * TP_BSIZE]
        heads = [h for h in (_header_in(record[i:i + TP_BSIZE]) for i in range(0, len(record), TP_BSIZE)) if h]
        assert entry.ino in [h.c_inumber for h in heads if h.c_type == RecordType.TS_INODE]


def test_pydump_q_on_several_volumes_numbers_them(tmp_path: Path, tree: Path) -> None:
    prefix, qfa_file = tmp_path / "vol", tmp_path / "m.qfa"
    pydump("-0", "--quiet", "-M", "-B", "400", "-Q", str(qfa_file), "-f", str(prefix), str(tree))
    volumes = sorted(tmp_path.glob("vol0*"))
    assert len(volumes) >= 3
    want = [e for n, v in enumerate(volumes, 1) for e in expected_qfa(v.read_bytes(), n)]
    assert list(parse_qfa(qfa_file.read_text()).entries) == want
    assert {e.volume for e in want} >= {1, 2, 3}


def test_pydump_q_to_standard_output_is_refused(tree: Path) -> None:
    result = pydump("-0", "-Q", "x.qfa", "-f", "-", str(tree), check=False)
    assert result.returncode == 1
    assert "-Q needs -f FILE or a tape" in result.stderr.decode()


@needs_real_dump
def test_real_dump_q_follows_the_same_rule(tmp_path: Path, tree: Path) -> None:
    qfa_file = tmp_path / "real.qfa"
    image = real_dump_of(tree, tmp_path, "-Q", str(qfa_file)).read_bytes()
    qfa = parse_qfa(qfa_file.read_text())
    assert qfa.date == next(walk_image(image)).header.c_date
    assert list(qfa.entries) == expected_qfa(image)


# -- restore -Q, both ways --------------------------------------------------------------------------


WANTED = ["./many/f33", "./zlast", "./dir1/sub/file"]


def _assert_extracted(src: Path, out: Path, *, whole_seconds: bool = False) -> None:
    """The wanted files with their data, times and xattrs, and nothing else
    (mke2fs -d keeps only whole seconds of the times)."""
    unit = 10**9 if whole_seconds else 1000
    for name in WANTED:
        assert (out / name).read_bytes() == (src / name).read_bytes(), name
        assert (out / name).stat().st_mtime_ns // unit == (src / name).stat().st_mtime_ns // unit, name
    assert os.getxattr(out / "zlast", "user.note") == b"late"
    assert not (out / "many" / "f32").exists() and not (out / "dir1" / "big.bin").exists()


@needs_real_dump
def test_real_restore_q_extracts_with_our_map_from_our_image(tmp_path: Path, tree: Path) -> None:
    image, qfa_file = tmp_path / "ours.dump", tmp_path / "ours.qfa"
    pydump("-0", "--quiet", "-Q", str(qfa_file), "-f", str(image), str(tree))
    out = tmp_path / "out"
    out.mkdir()
    done = real_restore("-x", "-y", "-Q", str(qfa_file), "-f", str(image), *WANTED, cwd=out, tmp=tmp_path)
    assert "reading QFA positions from" in done.stdout + done.stderr
    _assert_extracted(tree, out)


@needs_real_dump
def test_real_restore_q_refuses_our_map_of_another_dump(tmp_path: Path, tree: Path) -> None:
    image, qfa_file = tmp_path / "ours.dump", tmp_path / "ours.qfa"
    pydump("-0", "--quiet", "-Q", str(qfa_file), "-f", str(image), str(tree))
    qfa_file.write_text(qfa_file.read_text().replace(str(parse_qfa(qfa_file.read_text()).date), "12345", 1))
    out = tmp_path / "out"
    out.mkdir()
    done = real_restore("-x", "-y", "-Q", str(qfa_file), "-f", str(image), "./zlast", cwd=out, tmp=tmp_path,
                        check=False)
    assert done.returncode != 0 and "different QFA/dumpdates" in done.stdout + done.stderr


@needs_real_dump
def test_pyrestore_q_seeks_with_the_real_dumps_map(tmp_path: Path, tree: Path) -> None:
    qfa_file = tmp_path / "real.qfa"
    image = real_dump_of(tree, tmp_path, "-Q", str(qfa_file))
    out = tmp_path / "out"
    out.mkdir()
    done = pyrestore("-x", "-v", "-Q", str(qfa_file), "-f", str(image), *WANTED, cwd=out)
    assert done.returncode == 0, done.stderr
    assert "seek to inode" in done.stdout
    _assert_extracted(tree, out, whole_seconds=True)


def test_pyrestore_q_reads_less_than_a_plain_extract(tmp_path: Path, tree: Path) -> None:
    from dumptool.restore import Options, Restore, VolumeInput

    image, qfa_file = tmp_path / "ours.dump", tmp_path / "ours.qfa"
    pydump("-0", "--quiet", "-Q", str(qfa_file), "-f", str(image), str(tree))
    read = {}
    for qfa in (None, parse_qfa(qfa_file.read_text())):
        out = tmp_path / f"out-{qfa is not None}"
        out.mkdir()
        source = VolumeInput(str(image))
        engine = Restore(source, Options(qfa=qfa, file_history=False))  # plain: no offset map
        engine.extract(str(out), WANTED)
        read[qfa is not None] = source._reader.blocks_read
        source.close()
        assert not engine.failed
        _assert_extracted(tree, out)
    assert read[True] * 4 < read[False], read


def test_pyrestore_q_refuses_a_map_of_another_dump(tmp_path: Path, tree: Path) -> None:
    image, qfa_file = tmp_path / "ours.dump", tmp_path / "ours.qfa"
    pydump("-0", "--quiet", "-Q", str(qfa_file), "-f", str(image), str(tree))
    qfa_file.write_text(qfa_preamble(12345))
    done = pyrestore("-x", "-Q", str(qfa_file), "-f", str(image), "./zlast", cwd=tmp_path)
    assert done.returncode == 1
    assert "different QFA/dumpdates detected" in done.stderr


def test_pyrestore_q_needs_x_or_t(tmp_path: Path) -> None:
    done = pyrestore("-r", "-Q", "x.qfa", "-f", "x.dump", cwd=tmp_path)
    assert done.returncode == 2 and "-Q works with -x and -t" in done.stderr


# -- a loopback drive: positions are the drive's logical blocks ----------------------------------


def test_on_a_tape_positions_are_logical_blocks_and_pyrestore_q_seeks_there(
        tmp_path: Path, tree: Path, nst0: str) -> None:
    from tapelib import open_device

    with open_device(nst0, writable=True) as drive:  # a first tape file, so that addresses count it
        drive.write(bytes(10 * TP_BSIZE))
        drive.write_filemarks(1)
    qfa_file = tmp_path / "tape.qfa"
    pydump("-0", "--quiet", "-Q", str(qfa_file), "-f", nst0, str(tree))
    data = tape_copy(nst0, 1)
    ntrec = next(walk_image(data)).header.c_ntrec
    # record r of tape file 2 sits at logical block 1 (the first record) + 1 (its filemark) + r
    want = [QfaEntry(e.ino, 1, 2 + e.position // (ntrec * TP_BSIZE)) for e in expected_qfa(data)]
    assert list(parse_qfa(qfa_file.read_text()).entries) == want
    with open_device(nst0) as drive:
        drive.rewind()
    out = tmp_path / "out"
    out.mkdir()
    done = pyrestore("-x", "-v", "-s", "2", "-Q", str(qfa_file), "-f", nst0, *WANTED, cwd=out)
    assert done.returncode == 0, done.stderr
    assert "seek to inode" in done.stdout
    _assert_extracted(tree, out)


# -- several volumes: -x jumps to the volume, -t lists the positions ------------------------------


@pytest.fixture(scope="module")
def real_volumes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``(tree, volume prefix, QFA file)``: the real dump -M -B 300 -Q of the tree."""
    if not (os.geteuid() == 0 and os.access(DUMP, os.X_OK)):
        pytest.skip("needs root and /sbin/dump")
    base = tmp_path_factory.mktemp("qfa-volumes")
    tree = make_tree(base / "src")
    qfa_file = base / "real.qfa"
    real_dump_of(tree, base, "-M", "-B", "300", "-Q", str(qfa_file), name="vol")
    assert len(list(base.glob("vol0*"))) >= 4
    return tree, base / "vol", qfa_file


def _q_listing(out: str) -> dict[str, tuple[int, int, int]]:
    """``./path -> (inode, volume, position)`` from a ``restore -t -Q`` listing."""
    found = {}
    for line in out.splitlines():
        fields = line.strip().split("\t")
        if len(fields) == 4 and all(f.isdigit() for f in fields[:3]):
            found[fields[3]] = (int(fields[0]), int(fields[1]), int(fields[2]))
    return found


@needs_real_dump
def test_t_with_q_lists_each_files_volume_and_position(real_volumes, tmp_path: Path) -> None:
    _, prefix, qfa_file = real_volumes
    qfa = parse_qfa(qfa_file.read_text())
    ours = pyrestore("-t", "-M", "-Q", str(qfa_file), "-f", str(prefix), cwd=tmp_path)
    assert ours.returncode == 0, ours.stderr
    theirs = real_restore("-t", "-M", "-Q", str(qfa_file), "-f", str(prefix), cwd=tmp_path, tmp=tmp_path)
    got, want = _q_listing(ours.stdout), _q_listing(theirs.stdout)
    assert got.keys() == want.keys() and len(got) > 40
    exact = {e.ino: (e.volume, e.position) for e in qfa.entries}
    for name, (ino, volume, position) in got.items():
        assert want[name][0] == ino
        assert (volume, position) == exact.get(ino, (0, 0)), name
        # the real restore scans its map forward only, so after the first inode
        # it does not find ("." never is) it prints 0 0: where it does print, it agrees
        assert want[name][1:] in ((0, 0), (volume, position)), name
    assert 0 in {v for _, v, _ in got.values()} and len({v for _, v, _ in got.values()} - {0}) >= 3
    # -v puts restore's "dir " / "leaf" in front
    verbose = pyrestore("-t", "-v", "-M", "-f", str(prefix), cwd=tmp_path).stdout.splitlines()
    real_verbose = real_restore("-t", "-v", "-M", "-f", str(prefix), cwd=tmp_path, tmp=tmp_path).stdout
    assert [ln for ln in verbose if ln.startswith(("dir ", "leaf"))] == \
        [ln for ln in real_verbose.splitlines() if ln.startswith(("dir ", "leaf"))]


@needs_real_dump
def test_pyrestore_q_goes_straight_to_a_later_volume(real_volumes, tmp_path: Path) -> None:
    tree, prefix, qfa_file = real_volumes
    qfa = parse_qfa(qfa_file.read_text())
    listed = _q_listing(pyrestore("-t", "-M", "-f", str(prefix), "-Q", str(qfa_file), cwd=tmp_path).stdout)
    entry = qfa.position_for(listed["./zlast"][0])
    assert entry is not None and entry.volume >= 3
    # a copy of the set without the volumes between the first and zlast's: never opened
    copy = tmp_path / "set"
    for vol in (1, entry.volume, *range(entry.volume + 1, 100)):
        source = Path(f"{prefix}{vol:03d}")
        if source.exists():
            shutil.copyfile(source, f"{copy}{vol:03d}")
    out = tmp_path / "out"
    out.mkdir()
    done = pyrestore("-x", "-v", "-y", "-M", "-Q", str(qfa_file), "-f", str(copy), "./zlast", cwd=out)
    assert done.returncode == 0, done.stderr
    assert f"seek to inode {entry.ino} at {entry.position} of volume {entry.volume}" in done.stdout
    assert (out / "zlast").read_bytes() == (tree / "zlast").read_bytes()
    assert os.getxattr(out / "zlast", "user.note") == b"late"
