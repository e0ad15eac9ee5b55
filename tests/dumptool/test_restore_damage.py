"""pyrestore on damaged images: it recovers at least what the real restore
does, says what it skipped in one line each, exits 1, and never ends in a
traceback (issue 9, items 8 and the crashes)."""

from __future__ import annotations

import os
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import console_script
from dumptool.format import CHECKSUM, TP_BSIZE, RecordType, walk_image
from samples import real_restore

FILES = 24


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A pydump image of FILES small files in four directories and a symlink."""
    root = tmp_path_factory.mktemp("damage")
    src = root / "src"
    for n in range(FILES):
        (src / f"d{n % 4}").mkdir(parents=True, exist_ok=True)
        (src / f"d{n % 4}" / f"f{n}").write_text(f"file {n}\n")
    os.symlink("d0/f0", src / "link")
    out = root / "img"
    subprocess.run([console_script("pydump"), "-0", "-q", "-f", str(out), str(src)], check=True,
                   stdin=subprocess.DEVNULL, timeout=60)
    return root, out.read_bytes()


def restore_x(data: bytes, tmp_path: Path, tool: str = "pyrestore") -> tuple[subprocess.CompletedProcess, dict]:
    """-x of *data* by pyrestore (or the real restore): the result and the files got back."""
    img = tmp_path / f"mutant-{tool}"
    img.write_bytes(data)
    out = tmp_path / f"out-{tool}"
    out.mkdir()
    if tool == "pyrestore":
        done = subprocess.run([console_script("pyrestore"), "-x", "-y", "-f", str(img)], cwd=out,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    else:
        done = real_restore("-x", "-y", "-f", str(img), cwd=out, tmp=tmp_path, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("f*") if p.is_file()}
    return done, got


def fix_checksum(data: bytearray, at: int) -> None:
    struct.pack_into("<i", data, at + 28, 0)
    total = sum(struct.unpack_from("<256I", data, at))
    struct.pack_into("<I", data, at + 28, (CHECKSUM - total) & 0xFFFFFFFF)


def set_field(data: bytes, at: int, offset: int, fmt: str, value: int) -> bytes:
    """*data* with the header at byte *at* given *value* at *offset*, its checksum made good again."""
    out = bytearray(data)
    struct.pack_into(fmt, out, at + offset, value)
    fix_checksum(out, at)
    return bytes(out)


def first_header(data: bytes, want) -> int:
    """Byte offset of the first header matching *want(header)*."""
    return next(r.index * TP_BSIZE for r in walk_image(data) if want(r.header))


def is_file(h) -> bool:
    return h.c_type == RecordType.TS_INODE and stat.S_ISREG(h.c_dinode.mode) and not h.is_extattr


def test_a_flipped_byte_in_the_clri_header_loses_no_file(image, tmp_path):
    _, data = image
    assert data[TP_BSIZE:TP_BSIZE + 4] == struct.pack("<i", RecordType.TS_CLRI)
    bad = bytearray(data)
    bad[TP_BSIZE + 200] ^= 0xFF
    done, got = restore_x(bytes(bad), tmp_path)
    assert len(got) == FILES
    assert done.returncode == 1
    assert "resynced" in done.stderr and "file removal list" in done.stderr


def test_a_flipped_byte_in_the_bits_header_loses_no_file(image, tmp_path):
    _, data = image
    at = first_header(data, lambda h: h.c_type == RecordType.TS_BITS)
    bad = bytearray(data)
    bad[at + 200] ^= 0xFF
    done, got = restore_x(bytes(bad), tmp_path)
    assert len(got) == FILES and done.returncode == 1 and "file dump list" in done.stderr


def test_a_header_of_unknown_type_costs_only_its_file(image, tmp_path):
    _, data = image
    bad = set_field(data, first_header(data, is_file), 0, "<i", 9)
    done, got = restore_x(bad, tmp_path)
    assert len(got) == FILES - 1
    assert done.returncode == 1 and "unknown record type 9" in done.stderr
    _, real = restore_x(bad, tmp_path, tool="restore")
    assert len(got) >= len(real)


def test_a_huge_file_size_is_one_line_and_the_rest_is_restored(image, tmp_path):
    _, data = image
    bad = set_field(data, first_header(data, is_file), 32 + 8, "<Q", 2**64 - 1)
    done, got = restore_x(bad, tmp_path)
    assert done.returncode == 1 and len(got) == FILES
    assert len([line for line in done.stderr.splitlines() if "impossible" in line]) == 1, done.stderr


def test_a_nul_in_a_symlink_target_is_one_line(image, tmp_path):
    _, data = image
    at = first_header(data, lambda h: h.c_type == RecordType.TS_INODE and stat.S_ISLNK(h.c_dinode.mode))
    bad = bytearray(data)
    bad[at + TP_BSIZE + 1] = 0
    done, got = restore_x(bytes(bad), tmp_path)
    assert done.returncode == 1 and len(got) == FILES
    assert "NUL" in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr


def test_a_duplicated_header_is_resynced(image, tmp_path):
    _, data = image
    at = first_header(data, is_file)
    bad = data[:at + TP_BSIZE] + data[at:]
    done, got = restore_x(bad, tmp_path)
    assert done.returncode == 1 and len(got) >= FILES - 1


def test_an_end_record_in_place_of_the_clri_map_is_skipped(image, tmp_path):
    _, data = image
    bad = set_field(data, TP_BSIZE, 0, "<i", RecordType.TS_END)
    done, got = restore_x(bad, tmp_path)
    assert done.returncode == 1 and len(got) == FILES


def test_a_duplicated_volume_header_is_skipped(image, tmp_path):
    _, data = image
    done, got = restore_x(data[:TP_BSIZE] + data, tmp_path)
    assert done.returncode == 1 and len(got) == FILES and "TS_TAPE record at block 1" in done.stderr


def test_a_continuation_record_naming_another_inode_still_gives_its_data(tmp_path):
    """F7: a TS_ADDR whose c_inumber is damaged (checksum good) continues the
    inode before, as restore reads it: the data comes back, and one line says so."""
    src = tmp_path / "src"
    src.mkdir()
    body = bytes(range(256)) * 4 * 700  # 700 KiB: a TS_INODE of 512 blocks and a TS_ADDR
    (src / "big").write_bytes(body)
    img = tmp_path / "img"
    subprocess.run([console_script("pydump"), "-0", "-q", "-f", str(img), str(src)], check=True,
                   stdin=subprocess.DEVNULL, timeout=60)
    data = img.read_bytes()
    at = first_header(data, lambda h: h.c_type == RecordType.TS_ADDR)
    done, _ = restore_x(set_field(data, at, 20, "<I", 0x7FFFFFFF), tmp_path)
    assert (tmp_path / "out-pyrestore" / "big").read_bytes() == body
    assert done.returncode == 1 and "names inode 2147483647" in done.stderr


def test_a_volume_header_of_unknown_type_is_read_as_one(image, tmp_path):
    """F6: restore takes a good first block as the volume header whatever its c_type."""
    _, data = image
    done, got = restore_x(set_field(data, 0, 0, "<i", 100), tmp_path)
    assert len(got) == FILES and done.returncode == 1 and "unknown record type 100" in done.stderr


def test_a_qfa_position_past_the_wanted_file_is_reported(tmp_path):
    """FX: -x -Q with a map that sends the reader past a wanted file: one
    line names the file that did not come, exit 1 (no silent partial result)."""
    src = tmp_path / "src"
    src.mkdir()
    for n in range(8):
        (src / f"f{n}").write_bytes(bytes([n + 1]) * 100_000)
    img, qfa = tmp_path / "img", tmp_path / "q.qfa"
    subprocess.run([console_script("pydump"), "-0", "-q", "-Q", str(qfa), "-f", str(img), str(src)], check=True,
                   stdin=subprocess.DEVNULL, timeout=60)
    head, _, table = qfa.read_text().partition("ino\ttapeno\ttapepos\n")
    rows = [line.split("\t") for line in table.splitlines()]
    last = (img.stat().st_size // 10240 - 1) * 10240  # the image's last record
    bad = "".join(f"{ino}\t{vol}\t{last}\n" for ino, vol, _ in rows)
    qfa.write_text(head + "ino\ttapeno\ttapepos\n" + bad)
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([console_script("pyrestore"), "-x", "-Q", str(qfa), "-f", str(img), "f5"], cwd=out,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert not (out / "f5").exists()
    assert done.returncode == 1 and "./f5 (inode" in done.stderr and "not found on the image" in done.stderr


@pytest.mark.parametrize("size", [2**40, 2**63, 2**64 - 1])
def test_a_huge_directory_size_reads_only_the_blocks_there(image, tmp_path, size):
    """F3: a directory is never padded to its di_size in memory."""
    _, data = image
    at = first_header(data, lambda h: h.c_type == RecordType.TS_INODE and stat.S_ISDIR(h.c_dinode.mode)
                      and h.c_inumber != 2)
    done, got = restore_x(set_field(data, at, 32 + 8, "<Q", size), tmp_path)
    assert len(got) == FILES, done.stderr


def test_a_nonsense_file_type_is_an_error_not_a_warning(image, tmp_path):
    _, data = image
    bad = set_field(data, first_header(data, is_file), 32, "<H", 0o170644)
    done, got = restore_x(bad, tmp_path)
    assert len(got) == FILES - 1 and done.returncode == 1 and "unknown file type" in done.stderr
