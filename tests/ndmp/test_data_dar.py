"""Direct access recovery (DAR) with the real ndmjob, one server (LOCAL data
connection): a level 0 of a snapfs volume with an index, then ``ndmjob -x``
of several single files.  The data service reads the front of the image
(maps and directories), then each wanted file's own records, seeking past
the big files between them: one range per file, far fewer records than the
image holds, and the Pass V record (``ACL_START`` in the backup's env) for
xattrs too big for a file's own EA record.  The files come back byte for
byte with their owner, mode, times and xattrs.  A name whose index position is -1 (unknown, as DMAs send
it) is accepted: the recover reads the image through for it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest
from pyndmpd_process import LoadedDrive, NdmpServer, load_drive, module_shelf, run_ndmjob  # noqa: F401
from test_data import image_size, ok, recover_read
from test_data_filer import BIN, server, snapfs  # noqa: F401 (server: a fixture)


pytestmark = pytest.mark.fuse

#: The small files a DAR takes back, and the big ones it must not read.
WANTED = ["a/one.txt", "b/deep/two.bin", "three.txt"]


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A snapfs volume: small wanted files with big ones (8 MB in all) between them."""
    from snapfs import Volume
    from snapfs.cli.main import parse_size

    voldir, mnt = tmp_path / "vol", tmp_path / "mnt"
    mnt.mkdir()
    Volume.create(voldir, parse_size("160M"), 300, name="darvol", block_size=16384).close()  # xattrs up to 16 KiB
    snapfs("mount", voldir, mnt)
    try:
        (mnt / "a").mkdir()
        (mnt / "b" / "deep").mkdir(parents=True)
        (mnt / "a" / "one.txt").write_text("one\n" * 1000)
        (mnt / "a" / "big1").write_bytes(os.urandom(2_000_000))
        (mnt / "a" / "big2").write_bytes(os.urandom(2_000_000))
        (mnt / "b" / "deep" / "two.bin").write_bytes(os.urandom(700_000))  # more than one header's 512 KiB
        (mnt / "b" / "big3").write_bytes(os.urandom(2_000_000))
        (mnt / "big4").write_bytes(os.urandom(2_000_000))
        three = mnt / "three.txt"
        three.write_text("three\n")
        os.setxattr(three, "user.origin", b"the filer")
        for name in ("user.big1", "user.big2"):  # too big together for its EA record: one goes to Pass V
            os.setxattr(three, name, os.urandom(3000))
        os.chown(three, 1234, 5678)
        os.chmod(three, 0o640)
        os.utime(three, (1_600_000_000, 1_500_000_000))
        os.chown(mnt / "a" / "one.txt", 4321, 8765)
        yield mnt
    finally:
        subprocess.run([str(BIN / "snapfs"), "unmount", str(mnt)], capture_output=True)
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)


def ndmjob(server: NdmpServer, *args: str) -> str:
    return run_ndmjob(*args[:1], "-D", f"127.0.0.1:{server.port}/4n", *args[1:], "-v").stdout


def same_file(a: Path, b: Path) -> None:
    """Same bytes, owner, mode, mtime and xattrs."""
    assert a.read_bytes() == b.read_bytes(), b
    sa, sb = a.stat(), b.stat()
    assert (sa.st_mode, sa.st_uid, sa.st_gid, sa.st_mtime_ns // 10**9) == \
        (sb.st_mode, sb.st_uid, sb.st_gid, sb.st_mtime_ns // 10**9), b
    assert {n: os.getxattr(a, n) for n in os.listxattr(a)} == {n: os.getxattr(b, n) for n in os.listxattr(b)}, b


def records_read(output: str) -> int:
    """The tape records the mover read, as ndmjob last shows its state."""
    counts = re.findall(r"MOVER: read \d+KB record (\d+)", output)
    assert counts, output
    return int(counts[-1])


def test_dar_of_single_files_seeks_to_each_and_a_position_of_minus_one_reads_through(
        server: NdmpServer, load_drive: Callable[..., LoadedDrive], volume: Path, tmp_path: Path) -> None:
    tape = load_drive(capacity=32 * 1024 * 1024)
    idx = tmp_path / "idx"
    ok(ndmjob(server, "-c", "-f", tape.nst, "-B", "dump", "-C", str(volume), "-E", "LEVEL=0", "-I", str(idx)))
    whole = image_size(idx)
    assert whole > 8_000_000
    assert re.search(r"^DE ACL_START=\d+$", idx.read_text(), re.M)  # where the Pass V record is

    out_dir = volume / "out"  # on snapfs: room for the big xattrs (/tmp's ext4 has 4 KiB)
    out_dir.mkdir()
    out = ndmjob(server, "-x", "-f", tape.nst, "-B", "dump", "-C", str(out_dir), "-J", str(idx), *WANTED)
    ok(out)
    assert f"LOG_FILE messages: {len(WANTED)} OK, 0 ERROR, total {len(WANTED)} of {len(WANTED)}" in out, out
    for name in WANTED:
        same_file(volume / name, out_dir / name)
    assert "cannot set" not in out and not (out_dir / "a" / "big1").exists() and not (out_dir / "big4").exists()
    # the front, then each file's own records: one range for each (two.bin: one per header), and
    # about what the files hold; not the 8 MB of big files between them
    read, ranges = recover_read(out)
    wanted_bytes = sum((volume / n).stat().st_size for n in WANTED)
    assert ranges >= 1 + len(WANTED), out
    assert read < wanted_bytes + 200_000, (read, wanted_bytes, whole)
    assert records_read(out) * 10240 < whole / 8, out

    # a name whose position is -1 (unknown): accepted, the image is read through for it
    unknown = tmp_path / "idx-unknown"
    index = idx.read_text()
    node = {line.split()[2]: line.split()[4] for line in index.splitlines() if line.startswith("DHd ")}["one.txt"]
    unknown.write_text(re.sub(rf"^(DHn {node} .*)@\d+$", r"\1@-1", index, flags=re.M))
    assert unknown.read_text() != index
    blind = volume / "blind"
    blind.mkdir()
    out = ndmjob(server, "-x", "-f", tape.nst, "-B", "dump", "-C", str(blind), "-J", str(unknown),
                 "a/one.txt", "three.txt")
    ok(out)
    assert "a/one.txt has no position (fh_info -1): reading the image through" in out, out
    same_file(volume / "a" / "one.txt", blind / "a" / "one.txt")
    same_file(volume / "three.txt", blind / "three.txt")
    read, _ranges = recover_read(out)
    assert read >= whole - 10240, (read, whole)
