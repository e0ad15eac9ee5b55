"""``pyrestore -P FILE``: the QFA file made from the image, as restore 0.4b47's -P.

The oracles: the real ``restore -P`` writes the very same file for an image
whose records are the 32 KiB it reads a file in; ``pydump -Q``'s map of the
same image is part of ours (dump lists the first file of each record, -P
every file); the real ``restore -Q`` and ``pyrestore -Q`` extract with it.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from dumptool.format import DR_EXTATTRIBUTES, TP_BSIZE, QfaEntry, RecordType, parse_qfa, walk_image
from samples import real_restore, tape_copy
from test_pydump import pydump, pyrestore
from test_qfa import WANTED, _assert_extracted, _header_in, make_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("qfa-out")
    root = make_tree(base / "src")
    (root / "link").symlink_to("zlast")
    (root / "hard").hardlink_to(root / "many" / "f01")
    return root


def every_file(image: bytes, volume: int = 1) -> list[QfaEntry]:
    """-P's rule applied to one volume's bytes: each file header's inode, at
    the byte offset of the record (the volume header's ``c_ntrec``) it is in."""
    segments = list(walk_image(image))
    size = segments[0].header.c_ntrec * TP_BSIZE
    return [QfaEntry(s.head.c_inumber, volume, s.index * TP_BSIZE // size * size) for s in segments
            if s.head.c_type == RecordType.TS_INODE and not s.head.c_flags & DR_EXTATTRIBUTES
            and not stat.S_ISDIR(s.header.c_dinode.mode)]


def _p(qfa: Path, *args: str, cwd: Path) -> list[QfaEntry]:
    done = pyrestore("-P", str(qfa), *args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert f"writing QFA positions to {qfa}" in done.stderr
    return list(parse_qfa(qfa.read_text()).entries)


def test_p_on_a_file_lists_every_file_and_holds_pydump_qs_map(tmp_path: Path, tree: Path) -> None:
    image, dumped, made = tmp_path / "t.dump", tmp_path / "dump.qfa", tmp_path / "made.qfa"
    pydump("-0", "--quiet", "-Q", str(dumped), "-f", str(image), str(tree))
    ours = _p(made, "-f", str(image), cwd=tmp_path)
    assert ours == sorted(every_file(image.read_bytes())) and len(ours) > 40
    assert set(parse_qfa(dumped.read_text()).entries) < set(ours)
    assert made.read_text().startswith(dumped.read_text().split("\n\n")[0])  # magic, version, the dump's date
    for ino in (e.ino for e in ours):  # nothing extracted
        assert not (tmp_path / str(ino)).exists()
    assert not (tmp_path / "many").exists()


@pytest.mark.parametrize("names", [(), ("./many", "./zlast", "./link")])
def test_p_writes_what_the_real_restore_p_writes(tmp_path: Path, tree: Path, names: tuple[str, ...]) -> None:
    image, ours, theirs = tmp_path / "t.dump", tmp_path / "ours.qfa", tmp_path / "theirs.qfa"
    pydump("-0", "--quiet", "-b", "32", "-f", str(image), str(tree))  # restore reads a file 32 KiB at a time
    _p(ours, "-f", str(image), *names, cwd=tmp_path)
    real_restore("-P", str(theirs), "-a", "-f", str(image), *names, cwd=tmp_path, tmp=tmp_path)
    assert ours.read_text() == theirs.read_text()
    assert len(parse_qfa(ours.read_text()).entries) > (40 if not names else 30)


def test_restore_q_and_pyrestore_q_extract_with_the_map_p_made(tmp_path: Path, tree: Path) -> None:
    image, made = tmp_path / "t.dump", tmp_path / "made.qfa"
    pydump("-0", "--quiet", "-f", str(image), str(tree))
    _p(made, "-f", str(image), cwd=tmp_path)
    real_out, our_out = tmp_path / "real", tmp_path / "ours"
    real_out.mkdir()
    our_out.mkdir()
    done = real_restore("-x", "-y", "-Q", str(made), "-f", str(image), *WANTED, cwd=real_out, tmp=tmp_path)
    assert "reading QFA positions from" in done.stdout + done.stderr
    _assert_extracted(tree, real_out)
    done = pyrestore("-x", "-v", "--no-file-history", "-Q", str(made), "-f", str(image), *WANTED, cwd=our_out)
    assert done.returncode == 0, done.stderr
    assert "seek to inode" in done.stdout
    _assert_extracted(tree, our_out)


def test_p_on_a_compressed_image_gives_each_records_own_offset(tmp_path: Path, tree: Path) -> None:
    image, dumped, made = tmp_path / "z.dump", tmp_path / "dump.qfa", tmp_path / "made.qfa"
    pydump("-0", "--quiet", "-z", "-Q", str(dumped), "-f", str(image), str(tree))
    ours = _p(made, "-f", str(image), cwd=tmp_path)
    assert set(parse_qfa(dumped.read_text()).entries) < set(ours)  # records of every size, where dump said
    out = tmp_path / "out"
    out.mkdir()
    done = pyrestore("-x", "-v", "--no-file-history", "-Q", str(made), "-f", str(image), *WANTED, cwd=out)
    assert done.returncode == 0, done.stderr
    assert "seek to inode" in done.stdout
    _assert_extracted(tree, out)


def test_p_on_several_volumes_numbers_them(tmp_path: Path, tree: Path) -> None:
    prefix, dumped, made = tmp_path / "vol", tmp_path / "dump.qfa", tmp_path / "made.qfa"
    pydump("-0", "--quiet", "-M", "-B", "400", "-Q", str(dumped), "-f", str(prefix), str(tree))
    volumes = sorted(tmp_path.glob("vol0*"))
    assert len(volumes) >= 3
    ours = _p(made, "-M", "-f", str(prefix), cwd=tmp_path)
    assert set(parse_qfa(dumped.read_text()).entries) < set(ours)
    assert {e.volume for e in ours} == set(range(1, len(volumes) + 1))
    size = next(walk_image(volumes[0].read_bytes()[:TP_BSIZE])).header.c_ntrec * TP_BSIZE
    for entry in ours:  # each at the start of a record of its volume that holds its header
        data = volumes[entry.volume - 1].read_bytes()
        assert entry.position % size == 0
        record = data[entry.position:entry.position + size]
        heads = [_header_in(record[i:i + TP_BSIZE]) for i in range(0, len(record), TP_BSIZE)]
        assert any(h and h.c_type == RecordType.TS_INODE and h.c_inumber == entry.ino for h in heads), entry


def test_p_on_a_tape_gives_logical_blocks_and_pyrestore_q_seeks_there(
        tmp_path: Path, tree: Path, nst0: str) -> None:
    from tapelib import open_device

    with open_device(nst0, writable=True) as drive:  # a first tape file, so that addresses count it
        drive.write(bytes(10 * TP_BSIZE))
        drive.write_filemarks(1)
    dumped, made = tmp_path / "dump.qfa", tmp_path / "made.qfa"
    pydump("-0", "--quiet", "-Q", str(dumped), "-f", nst0, str(tree))
    data = tape_copy(nst0, 1)
    ntrec = next(walk_image(data)).header.c_ntrec
    with open_device(nst0) as drive:
        drive.rewind()
    ours = _p(made, "-s", "2", "-f", nst0, cwd=tmp_path)
    # record r of tape file 2 sits at logical block 1 (the first record) + 1 (its filemark) + r
    want = [QfaEntry(e.ino, 1, 2 + e.position // (ntrec * TP_BSIZE)) for e in every_file(data)]
    assert ours == sorted(want)
    assert set(parse_qfa(dumped.read_text()).entries) < set(ours)
    with open_device(nst0) as drive:
        drive.rewind()
    out = tmp_path / "out"
    out.mkdir()
    done = pyrestore("-x", "-v", "--no-file-history", "-s", "2", "-Q", str(made), "-f", nst0, *WANTED, cwd=out)
    assert done.returncode == 0, done.stderr
    assert "seek to inode" in done.stdout
    _assert_extracted(tree, out)


def test_p_from_a_pipe_is_refused_in_one_line(tmp_path: Path, tree: Path) -> None:
    image = tmp_path / "t.dump"
    pydump("-0", "--quiet", "-f", str(image), str(tree))
    done = subprocess.run(["sh", "-c", f"cat {image} | {pyrestore_path()} -P {tmp_path / 'x.qfa'} -f -"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == \
        "pyrestore: -: -P needs a file or a tape drive: a pipe cannot tell positions"
    assert "Traceback" not in done.stderr


def test_p_and_another_mode_are_refused(tmp_path: Path) -> None:
    done = pyrestore("-x", "-P", "x.qfa", "-f", "x.dump", cwd=tmp_path)
    assert done.returncode == 2 and "not allowed with argument" in done.stderr


def pyrestore_path() -> str:
    from conftest import console_script

    return console_script("pyrestore")
