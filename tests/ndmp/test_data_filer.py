"""NDMP backups of a snapfs path go through the filer's engine (issues 13 and 15): the
engine dumps its own snapshot_for_backup.N of the path's scope (a qtree here), held while
it is read and deleted after; files under client I/O restriction are skipped and said in
LOG messages (ndmjob prints them), and taken by the next backup once lifted; an
incremental after the volume's access type changed is refused, naming why."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from pyndmpd_process import LoadedDrive, NdmpServer, _start, load_drive, module_shelf, run_ndmjob  # noqa: F401

from ndmp.engine import BackupRequest, DumpEngine
from test_data import recover_read, tape_image
from ndmp.errors import EngineError
from tapelib import Shelf

pytestmark = pytest.mark.fuse

BIN = Path(sys.executable).parent


def snapfs(*args: str | Path) -> None:
    r = subprocess.run([str(BIN / "snapfs"), *map(str, args)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    from snapfs import Volume
    from snapfs.cli.main import parse_size

    voldir, mnt = tmp_path / "vol", tmp_path / "mnt"
    mnt.mkdir()
    Volume.create(voldir, parse_size("32M"), 200, name="ndmpvol", block_size=4096).close()
    snapfs("mount", voldir, mnt)
    try:
        snapfs("qtree", "create", mnt, "qt")
        (mnt / "outside.txt").write_text("not in the qtree\n")
        (mnt / "qt" / "sub").mkdir()
        (mnt / "qt" / "sub" / "a.txt").write_text("alpha\n")
        (mnt / "qt" / "held.bin").write_bytes(os.urandom(50_000))
        time.sleep(1.1)  # older than the level 0's date (dump compares whole seconds)
        yield mnt
    finally:
        subprocess.run([str(BIN / "snapfs"), "unmount", str(mnt)], capture_output=True)
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)


def snapshots(mnt: Path) -> dict[str, tuple[str, ...]]:
    from snapfs import client

    with client.open_volume(mnt) as c:
        return {s.name: s.holders for s in c.snapshot_list()}


def test_the_engine_dumps_a_held_backup_snapshot_of_a_qtree_and_logs_restricted_files(volume: Path,
                                                                                      tmp_path: Path) -> None:
    snapfs("restrict", volume, "qt/held.bin", "--owner", "restore-3")
    seen: list[dict] = []
    image = bytearray()

    def write(data: bytes) -> None:
        if not seen:
            seen.append(snapshots(volume))
            (volume / "qt" / "sub" / "a.txt").write_text("changed while the backup ran\n")
        image.extend(data)

    dd = str(tmp_path / "dumpdates")
    engine = DumpEngine(str(tmp_path))
    result = engine.backup(BackupRequest(str(volume / "qt"), 0, update=True, dumpdates=dd), write, threading.Event())
    assert list(seen[0]) == ["snapshot_for_backup.0"] and seen[0]["snapshot_for_backup.0"]  # held meanwhile
    assert snapshots(volume) == {}  # gone after
    assert result.warnings == [f"{volume}/qt/held.bin: under client I/O restriction (owner restore-3): not dumped; "
                               "the next dump of this path takes it"]
    names = {e.name for e in result.entries}
    assert names == {".", "sub", "a.txt"}  # the qtree's scope, less the restricted file
    (tmp_path / "l0").write_bytes(image)
    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run([str(BIN / "pyrestore"), "-r", "-y", "-f", str(tmp_path / "l0")], cwd=out,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (out / "sub" / "a.txt").read_text() == "alpha\n"  # the snapshot's, not the live change
    # lifted: the level 1 takes it, unchanged
    time.sleep(1.1)
    snapfs("unrestrict", volume, "qt/held.bin", "--owner", "restore-3")
    result = engine.backup(BackupRequest(str(volume / "qt"), 1, update=True, dumpdates=dd), lambda d: None,
                           threading.Event())
    assert "held.bin" in {e.name for e in result.entries if e.stat is not None and not e.directory}
    # the volume's access type changed: an incremental is refused, its snapshot given back
    snapfs("volume", "modify", volume, "--type", "ro")
    with pytest.raises(EngineError, match=r"access type changed \(rw, now ro\).*run a level 0$"):
        engine.backup(BackupRequest(str(volume / "qt"), 2, update=True, dumpdates=dd), lambda d: None,
                      threading.Event())
    assert snapshots(volume) == {}


@pytest.fixture(scope="module")
def server(module_shelf: Shelf, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NdmpServer]:
    work = tmp_path_factory.mktemp("ndmpfiler")
    started = _start(["--shelf", str(module_shelf.path), "--dumpdates", str(work / "dumpdates"),
                      "--volume", str(tmp_path_factory.getbasetemp())])
    yield started
    print("pyndmpd log:", *started.log(), sep="\n")
    started.process.terminate()
    started.process.wait(10)


def ndmjob(server: NdmpServer, *args: str) -> str:
    return run_ndmjob(*args[:1], "-D", f"127.0.0.1:{server.port}/4n", *args[1:], "-v").stdout


def backup_with_index(server: NdmpServer, tape: LoadedDrive, path: Path, level: int, index: Path) -> tuple[str, set]:
    """``ndmjob -c`` of *path* at *level* with its index written to *index*: its
    output (which must say the session ended OKAY) and the directory names the index lists."""
    out = ndmjob(server, "-c", "-f", tape.nst, "-B", "dump", "-C", str(path), "-E", f"LEVEL={level}",
                 "-I", str(index))
    assert 'SESS "Operation ended OKAY"' in out, out
    return out, {line.split()[2] for line in index.read_text().splitlines() if line.startswith("DHd ")}


def test_ndmjob_backs_up_a_snapfs_qtree_with_a_restricted_file(server: NdmpServer,
                                                               load_drive: Callable[..., LoadedDrive],
                                                               volume: Path, tmp_path: Path) -> None:
    snapfs("restrict", volume, "qt/held.bin", "--owner", "restore-4")
    (volume / "qt" / "big.bin").write_bytes(os.urandom(2_000_000))  # what a direct access recover skips
    time.sleep(1.1)  # older than the level 0's date
    tape = load_drive()
    idx = tmp_path / "idx"
    out, names = backup_with_index(server, tape, volume / "qt", 0, idx)
    assert f"{volume}/qt/held.bin: under client I/O restriction (owner restore-4): not dumped" in out, out
    assert {"sub", "a.txt", "big.bin"} <= names and "held.bin" not in names and "outside.txt" not in names, names
    assert snapshots(volume) == {}
    # the image: the real Linux restore and pyrestore read it
    (tmp_path / "l0").write_bytes(tape_image(tape))
    for tool in ("/sbin/restore", str(BIN / "pyrestore")):
        r = subprocess.run([tool, "-t", "-f", str(tmp_path / "l0")], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "./sub/a.txt" in r.stdout and "held.bin" not in r.stdout, (tool, r.stderr)
    # -t: ndmjob's listing of the tape; -x of the whole qtree; -x of one file by direct access
    toc = tmp_path / "toc"
    assert 'SESS "Operation ended OKAY"' in ndmjob(server, "-t", "-f", tape.nst, "-B", "dump", "-I", str(toc))
    assert {line.split()[2] for line in toc.read_text().splitlines() if line.startswith("DHd ")} == names
    whole, one = tmp_path / "whole", tmp_path / "one"
    whole.mkdir()
    one.mkdir()
    out = ndmjob(server, "-x", "-f", tape.nst, "-B", "dump", "-C", str(whole), "-J", str(idx))
    assert 'SESS "Operation ended OKAY"' in out and "had problems" not in out, out
    assert (whole / "sub" / "a.txt").read_text() == "alpha\n" and not (whole / "outside.txt").exists()
    assert (whole / "big.bin").read_bytes() == (volume / "qt" / "big.bin").read_bytes()
    out = ndmjob(server, "-x", "-f", tape.nst, "-B", "dump", "-C", str(one), "-J", str(idx), "sub/a.txt")
    assert "LOG_FILE messages: 1 OK, 0 ERROR, total 1 of 1" in out, out
    assert (one / "sub" / "a.txt").read_text() == "alpha\n" and not (one / "big.bin").exists()
    read, _ranges = recover_read(out)
    assert read < 1_000_000 and "reading the image through" not in out, out
    # lifted: the next backup takes it although it did not change
    time.sleep(1.1)
    snapfs("unrestrict", volume, "qt/held.bin", "--owner", "restore-4")
    tape1 = load_drive()
    idx1 = tmp_path / "idx1"
    out, names1 = backup_with_index(server, tape1, volume / "qt", 1, idx1)
    nodes = [line for line in idx1.read_text().splitlines() if line.startswith("DHn ")]
    assert "held.bin" in names1, names1
    assert len(nodes) == 2 and " s50000 " in nodes[1], nodes  # the root and held.bin only: nothing else changed
    (tmp_path / "l1").write_bytes(tape_image(tape1))
    for tool in ("/sbin/restore", str(BIN / "pyrestore")):
        r = subprocess.run([tool, "-t", "-f", str(tmp_path / "l1")], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "./held.bin" in r.stdout and "a.txt" not in r.stdout, (tool, r.stderr)
    # moved since: the next incremental is refused, the reason in a LOG message
    (tmp_path / "aggr9").mkdir()
    snapfs("volume", "move", volume, "--to", tmp_path / "aggr9" / "vol")
    out = ndmjob(server, "-c", "-f", load_drive().nst, "-B", "dump", "-C", str(volume / "qt"), "-E", "LEVEL=2",
                 "-I", str(tmp_path / "idx2"))
    assert 'SESS "Operation ended OKAY"' not in out, out
    assert f"cannot dump {volume}/qt at level 2: the volume was moved (aggr0, now {tmp_path / 'aggr9'}) since its " \
           "level 1 base: run a level 0" in out, out
    assert snapshots(volume) == {}
