"""The DATA service with the real ndmjob, one server (LOCAL data connection):
test-data, level 0 and 1 backups of a plain directory and of a snapfs
snapshot with an index, the listing (-t), restores of the whole tree and
of single files by direct access; the images read by pyrestore and by the
real Linux restore.  Bad input: a second DATA_START, a DMA that vanishes
in the middle of a backup."""

from __future__ import annotations

import filecmp
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from dma import Dma
from pyndmpd_process import (  # noqa: F401
    LoadedDrive,
    NdmpServer,
    _start,
    load_drive,
    module_shelf,
    run_ndmjob,
)

from ndmp.messages import (
    Addr,
    DataConnectRequest,
    DataStartBackupRequest,
    MoverListenRequest,
    MoverSetRecordSizeRequest,
    MoverSetWindowRequest,
    Pval,
    TapeOpenRequest,
)
from ndmp.protocol import AddrType, DataHaltReason, DataState, Error, Message, MoverMode, MoverState
from ndmp.xdr import U64_INVALID
from tapelib import Shelf, TapeError

PYRESTORE = str(Path(sys.executable).parent / "pyrestore")
RESTORE = "/sbin/restore"


@pytest.fixture(scope="module")
def server(module_shelf: Shelf, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NdmpServer]:
    """pyndmpd with a dumpdates file of its own."""
    work = tmp_path_factory.mktemp("ndmpdata")
    # every test's tmp_path lies inside the base temp, the one volume served
    started = _start(["--shelf", str(module_shelf.path), "--dumpdates", str(work / "dumpdates"),
                      "--volume", str(tmp_path_factory.getbasetemp())])
    started.dumpdates = work / "dumpdates"  # type: ignore[attr-defined]
    yield started
    print("pyndmpd log:", *started.log(), sep="\n")
    started.process.terminate()
    started.process.wait(10)


def ndmjob(server: NdmpServer, *args: str) -> str:
    run = run_ndmjob(*args[:1], "-D", f"127.0.0.1:{server.port}/4n", *args[1:], "-v")
    return run.stdout


def ok(output: str) -> None:
    assert 'SESS "Operation ended OKAY"' in output, output
    assert "had problems" not in output, output


def tape_image(tape: LoadedDrive) -> bytes:
    """The first tape file of a cartridge (the image, padded to whole records)."""
    drive = tape.shelf.open_drive(tape.index)
    try:
        drive.rewind()
        parts = []
        try:
            while record := drive.read(256 * 1024):
                parts.append(record)
        except TapeError:  # end of data without a filemark (a backup cut short)
            pass
        return b"".join(parts)
    finally:
        drive.close()


def make_tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello\n")
    (root / "sub" / "blob.bin").write_bytes(os.urandom(300_000))
    (root / "link").symlink_to("hello.txt")
    # two big files before the last one: a direct access restore of it skips them
    (root / "big1").write_bytes(os.urandom(3_000_000))
    (root / "big2").write_bytes(os.urandom(3_000_000))
    (root / "sub" / "zz.txt").write_text("wanted\n")


def same_tree(a: Path, b: Path) -> None:
    cmp = filecmp.dircmp(a, b)
    assert not cmp.left_only and not cmp.right_only, (cmp.left_only, cmp.right_only)
    for name in cmp.common_files:
        if not (a / name).is_symlink():
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        else:
            assert os.readlink(a / name) == os.readlink(b / name)
    for name in cmp.common_dirs:
        same_tree(a / name, b / name)


def recover_read(output: str) -> tuple[int, int]:
    """``(bytes, ranges)`` of the image a recover read, as its LOG message tells them."""
    match = re.search(r'"recover read (\d+) bytes of the image in (\d+) range\(s\)"', output)
    assert match, output
    return int(match.group(1)), int(match.group(2))


def image_size(index: Path) -> int:
    match = re.search(r"^CM 01 \+0/(\d+)K$", index.read_text(), re.M)
    assert match, index.read_text()
    return int(match.group(1)) * 1024


def test_ndmjob_test_data_passes_all_24(server: NdmpServer) -> None:
    run = run_ndmjob("-o", "test-data", "-D", f"127.0.0.1:{server.port}/4n", "-v")
    assert run.returncode == 0, run.stdout
    assert 'TEST "FINAL test-data Passed -- pass=24 warn=0 fail=0 (total 24)"' in run.stdout
    assert 'TEST "LOCAL and TCP addressing tested."' in run.stdout


def test_backup_levels_list_restore_and_dar_of_a_directory(server: NdmpServer, load_drive: Callable[..., LoadedDrive],
                                                           tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    time.sleep(1.1)  # dump compares whole seconds: the level 1 must not take these files for new
    t0 = load_drive(capacity=32 * 1024 * 1024)
    idx0 = tmp_path / "idx0"
    out = ndmjob(server, "-c", "-f", t0.nst, "-B", "dump", "-C", str(src), "-E", "LEVEL=0", "-I", str(idx0))
    ok(out)
    index = idx0.read_text()
    for line in ("DE LEVEL=0", "DE TYPE=dump", "DE UPDATE=y", "DE DIRECT=y", "DHd 2 . UNIX 2", "DHd 2 .. UNIX 2",
                 "DHr 2"):
        assert line in index.splitlines(), (line, index)
    assert re.search(r"^DE DUMP_DATE=\d+$", index, re.M)
    names = sorted(line.split()[2] for line in index.splitlines() if line.startswith("DHd "))
    assert names == [".", "..", "big1", "big2", "blob.bin", "hello.txt", "link", "sub", "zz.txt"]
    # every non-directory node has a direct access position
    nodes = [line for line in index.splitlines() if line.startswith("DHn ")]
    assert len(nodes) == 8 and all("@" in n for n in nodes if " fd " not in n), nodes

    # the image on tape: the real restore and pyrestore read it
    image = tmp_path / "l0.img"
    image.write_bytes(tape_image(t0))
    listing = subprocess.run([RESTORE, "-t", "-f", str(image)], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert "./sub/zz.txt" in listing.stdout and "./big2" in listing.stdout
    py = subprocess.run([PYRESTORE, "-t", "-f", str(image)], capture_output=True, text=True, timeout=60)
    assert py.returncode == 0 and "./sub/blob.bin" in py.stdout, py.stderr

    # -t: the index of the image as read back
    toc = tmp_path / "toc"
    ok(ndmjob(server, "-t", "-f", t0.nst, "-B", "dump", "-I", str(toc)))
    toc_names = sorted(line.split()[2] for line in toc.read_text().splitlines() if line.startswith("DHd "))
    assert toc_names == names
    assert re.search(r"^DHn \d+ UNIX f- m0644 u\d+ g\d+ s300000 ", toc.read_text(), re.M), toc.read_text()

    # -x of everything
    whole = tmp_path / "whole"
    whole.mkdir()
    ok(ndmjob(server, "-x", "-f", t0.nst, "-B", "dump", "-C", str(whole), "-J", str(idx0)))
    same_tree(src, whole)

    # -x of one file by direct access: the mover seeks past the big files
    one = tmp_path / "one"
    one.mkdir()
    out = ndmjob(server, "-x", "-f", t0.nst, "-B", "dump", "-C", str(one), "-J", str(idx0), "sub/zz.txt")
    ok(out)
    assert 'LOG_FILE messages: 1 OK, 0 ERROR, total 1 of 1' in out, out
    assert (one / "sub" / "zz.txt").read_text() == "wanted\n"
    assert not (one / "big1").exists()
    read, _ranges = recover_read(out)
    assert read < image_size(idx0) * 0.5, (read, image_size(idx0))

    # without an index the name list's fh_info is -1 (unknown): the whole image is read
    blind = tmp_path / "blind"
    blind.mkdir()
    out = ndmjob(server, "-x", "-f", t0.nst, "-B", "dump", "-C", str(blind), "hello.txt")
    ok(out)
    assert (blind / "hello.txt").read_text() == "hello\n" and not (blind / "sub").exists()
    read, _ranges = recover_read(out)
    assert read >= image_size(idx0) - 10240, (read, image_size(idx0))
    # a destination outside the served volumes is refused: nothing is written there
    outside = Path(f"/var/tmp/pyndmpd-outside-{os.getpid()}")
    out = ndmjob(server, "-x", "-f", t0.nst, "-B", "dump", "-C", str(outside), "-J", str(idx0), "hello.txt")
    assert 'SESS "Operation ended OKAY"' not in out and not outside.exists(), out
    # a name that is not in the image: its LOG_FILE says so and the run had problems
    out = ndmjob(server, "-x", "-f", t0.nst, "-B", "dump", "-C", str(blind), "-J", str(idx0), "no/such")
    assert "LOG_FILE messages: 0 OK, 1 ERROR, total 1 of 1" in out, out
    assert "Operation complete but had problems." in out, out

    # a stale index (hello.txt's fh_info pointing at zz.txt's header): the recover sees that the
    # header there is another inode's and reads the image through: hello.txt comes back all the same
    stale = tmp_path / "idx-stale"
    nodes_by_name = {line.split()[2]: line.split()[4] for line in index.splitlines() if line.startswith("DHd ")}
    zz_at = re.search(rf"^DHn {nodes_by_name['zz.txt']} .*(@\d+)$", index, re.M).group(1)
    stale.write_text(re.sub(rf"^(DHn {nodes_by_name['hello.txt']} .*)@\d+$", lambda m: m.group(1) + zz_at,
                            index, flags=re.M))
    older = tmp_path / "older"
    older.mkdir()
    (older / "hello.txt").write_text("older\n")
    out = ndmjob(server, "-x", "-f", t0.nst, "-B", "dump", "-C", str(older), "-J", str(stale), "hello.txt")
    ok(out)
    assert "LOG_FILE messages: 1 OK, 0 ERROR, total 1 of 1" in out, out
    assert "is not its file's (a stale index?): reading the image through" in out, out
    assert (older / "hello.txt").read_text() == "hello\n"

    # level 1: only what changed, based on the dumpdates the level 0 recorded
    (src / "hello.txt").write_text("changed\n")
    (src / "new.txt").write_text("new\n")
    t1 = load_drive(capacity=32 * 1024 * 1024)
    idx1 = tmp_path / "idx1"
    ok(ndmjob(server, "-c", "-f", t1.nst, "-B", "dump", "-C", str(src), "-E", "LEVEL=1", "-I", str(idx1)))
    assert "DE LEVEL=1" in idx1.read_text().splitlines()
    names1 = sorted(line.split()[2] for line in idx1.read_text().splitlines() if line.startswith("DHd "))
    assert "new.txt" in names1 and "big1" not in names1, names1
    dumpdates = server.dumpdates.read_text()  # type: ignore[attr-defined]
    assert re.search(rf"^{re.escape(str(src))}\s+0 ", dumpdates, re.M), dumpdates
    assert re.search(rf"^{re.escape(str(src))}\s+1 ", dumpdates, re.M), dumpdates
    l1 = tmp_path / "l1.img"
    l1.write_bytes(tape_image(t1))
    # the real restore -r of both levels gives today's tree
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    for img in (image, l1):
        r = subprocess.run([RESTORE, "-r", "-y", "-f", str(img)], cwd=rebuilt, capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, TMPDIR=str(tmp_path)))
        assert r.returncode == 0, r.stdout + r.stderr
    (rebuilt / "restoresymtable").unlink()
    same_tree(src, rebuilt)


def _snapfs(*args: str | Path) -> None:
    r = subprocess.run([str(Path(sys.executable).parent / "snapfs"), *map(str, args)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr


@pytest.mark.fuse
def test_backup_and_restore_of_a_snapfs_snapshot(server: NdmpServer, load_drive: Callable[..., LoadedDrive],
                                                 tmp_path: Path) -> None:
    from snapfs import Volume
    from snapfs.cli.main import parse_size

    voldir, mnt = tmp_path / "vol", tmp_path / "mnt"
    mnt.mkdir()
    Volume.create(voldir, parse_size("32M"), 200, name="ndmpvol", block_size=4096).close()
    _snapfs("mount", voldir, mnt)
    try:
        (mnt / "docs").mkdir()
        (mnt / "docs" / "a.txt").write_text("alpha\n")
        (mnt / "data.bin").write_bytes(os.urandom(200_000))
        time.sleep(1.1)  # dump compares whole seconds: the level 1 must not take these for new
        _snapfs("snapshot", "create", mnt, "s0")
        (mnt / "docs" / "a.txt").write_text("changed after the snapshot\n")
        snap = mnt / ".snapshot" / "s0"
        tape = load_drive()
        idx = tmp_path / "idx"
        ok(ndmjob(server, "-c", "-f", tape.nst, "-B", "dump", "-C", str(snap), "-E", "LEVEL=0", "-I", str(idx)))
        dest = tmp_path / "dest"
        dest.mkdir()
        ok(ndmjob(server, "-x", "-f", tape.nst, "-B", "dump", "-C", str(dest), "-J", str(idx)))
        same_tree(snap, dest)
        assert (dest / "docs" / "a.txt").read_text() == "alpha\n"
        # level 1 of a later snapshot: based on the level 0 of the live path's chain
        (mnt / "new.txt").write_text("new\n")
        _snapfs("snapshot", "create", mnt, "s1")
        tape1 = load_drive()
        idx1 = tmp_path / "idx1"
        ok(ndmjob(server, "-c", "-f", tape1.nst, "-B", "dump", "-C", str(mnt / ".snapshot" / "s1"), "-E", "LEVEL=1",
                  "-I", str(idx1)))
        names1 = {line.split()[2] for line in idx1.read_text().splitlines() if line.startswith("DHd ")}
        assert {"new.txt", "a.txt"} <= names1 and "data.bin" not in names1, names1
        l1 = tmp_path / "l1.img"
        l1.write_bytes(tape_image(tape1))
        r = subprocess.run([PYRESTORE, "-t", "-f", str(l1)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "./new.txt" in r.stdout and "./data.bin" not in r.stdout, r.stderr
        # the volume itself, live
        tape2 = load_drive()
        ok(ndmjob(server, "-c", "-f", tape2.nst, "-B", "dump", "-C", str(mnt), "-E", "LEVEL=0",
                  "-I", str(tmp_path / "idx2")))
        image = tmp_path / "live.img"
        image.write_bytes(tape_image(tape2))
        r = subprocess.run([RESTORE, "-t", "-f", str(image)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "./docs/a.txt" in r.stdout, r.stderr
        toc = tmp_path / "toc"
        ok(ndmjob(server, "-t", "-f", tape2.nst, "-B", "dump", "-I", str(toc)))
        listed = {line.split()[2] for line in toc.read_text().splitlines() if line.startswith("DHd ")}
        assert {"docs", "a.txt", "data.bin", "new.txt"} <= listed, listed
        # a subtree of the volume (a plain directory, no qtree): its scope alone
        tape3 = load_drive()
        idx3 = tmp_path / "idx3"
        ok(ndmjob(server, "-c", "-f", tape3.nst, "-B", "dump", "-C", str(mnt / "docs"), "-E", "LEVEL=0",
                  "-E", "UPDATE=n", "-I", str(idx3)))
        names3 = sorted(line.split()[2] for line in idx3.read_text().splitlines() if line.startswith("DHd "))
        assert names3 == [".", "..", "a.txt"], names3
        image3 = tmp_path / "docs.img"
        image3.write_bytes(tape_image(tape3))
        for tool in (RESTORE, PYRESTORE):
            r = subprocess.run([tool, "-t", "-f", str(image3)], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and "./a.txt" in r.stdout and "data.bin" not in r.stdout, (tool, r.stderr)
    finally:
        subprocess.run([str(Path(sys.executable).parent / "snapfs"), "unmount", str(mnt)], capture_output=True)
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)


def _local_backup(dma: Dma, device: str, path: Path, *extra: Pval) -> None:
    """A DMA's backup set-up over LOCAL, up to the running DATA_START_BACKUP
    (``extra``: more env, after LEVEL=0 and UPDATE=n)."""
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(device, 1)).error == Error.NO_ERR
    assert dma.call(Message.MOVER_SET_RECORD_SIZE, MoverSetRecordSizeRequest(10240)).error == Error.NO_ERR
    assert dma.call(Message.MOVER_SET_WINDOW, MoverSetWindowRequest(0, U64_INVALID)).error == Error.NO_ERR
    assert dma.call(Message.MOVER_LISTEN, MoverListenRequest(MoverMode.READ, AddrType.LOCAL)).error == Error.NO_ERR
    assert dma.call(Message.DATA_CONNECT, DataConnectRequest(Addr(AddrType.LOCAL))).error == Error.NO_ERR
    env = [Pval("FILESYSTEM", str(path)), Pval("LEVEL", "0"), Pval("UPDATE", "n"), *extra]
    assert dma.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", env)).error == Error.NO_ERR


def test_swap_connect_and_a_renamed_file(server: NdmpServer, load_drive: Callable[..., LoadedDrive],
                                         tmp_path: Path) -> None:
    """``-o swap-connect``: DATA_LISTEN(LOCAL), then MOVER_CONNECT(LOCAL) to it;
    ``NEW=OLD`` restores a file under another name (with ``EXTRACT=E`` and
    ``FORCE=y``, accepted)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("a\n")
    tape = load_drive()
    idx = tmp_path / "idx"
    ok(ndmjob(server, "-c", "-o", "swap-connect", "-f", tape.nst, "-B", "dump", "-C", str(src), "-E", "LEVEL=0",
              "-E", "UPDATE=n", "-I", str(idx)))
    dest = tmp_path / "dest"
    dest.mkdir()
    out = ndmjob(server, "-x", "-o", "swap-connect", "-f", tape.nst, "-B", "dump", "-C", str(dest), "-J", str(idx),
                 "-E", "EXTRACT=E", "-E", "FORCE=y", "b.txt=sub/a.txt")  # ONTAP's E: extract with renames
    ok(out)
    assert (dest / "b.txt").read_text() == "a\n"
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt"]  # no scratch directory left


def test_base_date_makes_an_incremental_without_dumpdates(server: NdmpServer,
                                                           load_drive: Callable[..., LoadedDrive],
                                                           tmp_path: Path) -> None:
    """UPDATE=n records nothing; a level 1 with BASE_DATE = the level 0's
    DUMP_DATE (from its DATA_GET_ENV) still dumps only what changed since."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "old.txt").write_text("old\n")
    time.sleep(1.1)
    tape = load_drive()
    idx = tmp_path / "idx"
    ok(ndmjob(server, "-c", "-f", tape.nst, "-B", "dump", "-C", str(src), "-E", "LEVEL=0", "-E", "UPDATE=n",
              "-I", str(idx)))
    dump_date = re.search(r"^DE DUMP_DATE=(\d+)$", idx.read_text(), re.M).group(1)
    dumpdates = server.dumpdates  # type: ignore[attr-defined]
    assert not dumpdates.exists() or str(src) not in dumpdates.read_text()
    (src / "new.txt").write_text("new\n")
    tape1 = load_drive()
    idx1 = tmp_path / "idx1"
    ok(ndmjob(server, "-c", "-f", tape1.nst, "-B", "dump", "-C", str(src), "-E", "LEVEL=1", "-E", "UPDATE=n",
              "-E", f"BASE_DATE={dump_date}", "-I", str(idx1)))
    names = {line.split()[2] for line in idx1.read_text().splitlines() if line.startswith("DHd ")}
    assert "new.txt" in names and "old.txt" not in names, names
    assert f"DE BASE_DATE={dump_date}" in idx1.read_text().splitlines()


def test_a_second_data_start_is_refused_and_bad_env_is_illegal_args(server: NdmpServer,
                                                                    load_drive: Callable[..., LoadedDrive],
                                                                    tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x\n")
    tape = load_drive()
    dma = Dma.connect(server.port)
    try:
        _local_backup(dma, tape.nst, src)
        again = dma.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", [Pval("FILESYSTEM", str(src))]))
        assert again.error == Error.ILLEGAL_STATE_ERR
        deadline = time.monotonic() + 20
        while dma.call(Message.DATA_GET_STATE).body.state != DataState.HALTED:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        env = {p.name: p.value for p in dma.call(Message.DATA_GET_ENV).body.env}
        assert env["LEVEL"] == "0" and env["UPDATE"] == "n" and int(env["DUMP_DATE"]) > 0
    finally:
        dma.close()
    # bad env: refused before anything starts
    dma = Dma.connect(server.port)
    try:
        tape2 = load_drive()
        assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(tape2.nst, 1)).error == Error.NO_ERR
        assert dma.call(Message.MOVER_LISTEN, MoverListenRequest(MoverMode.READ, AddrType.LOCAL)).error == 0
        assert dma.call(Message.DATA_CONNECT, DataConnectRequest(Addr(AddrType.LOCAL))).error == 0
        for env in ([Pval("FILESYSTEM", str(src)), Pval("LEVEL", "32")], [Pval("LEVEL", "0")],
                    [Pval("FILESYSTEM", str(src)), Pval("LEVEL", "²")],
                    [Pval("FILESYSTEM", str(src)), Pval("BASE_DATE", "99999999999999999999")],
                    [Pval("FILESYSTEM", str(src / "missing"))], [Pval("FILESYSTEM", "relative/path")],
                    [Pval("FILESYSTEM", "/etc")], [Pval("FILESYSTEM", str(src)), Pval("HIST", "f")],
                    [Pval("FILESYSTEM", str(src)), Pval("TYPE", "tar")],
                    [Pval("FILESYSTEM", str(src)), Pval("BASE_DATE", "yesterday")]):
            reply = dma.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", env))
            assert reply.error == Error.ILLEGAL_ARGS_ERR, env
        reply = dma.call(Message.DATA_START_BACKUP, DataStartBackupRequest("tar", [Pval("FILESYSTEM", str(src))]))
        assert reply.error == Error.ILLEGAL_ARGS_ERR
        assert dma.call(Message.DATA_GET_STATE).body.state == DataState.CONNECTED
    finally:
        dma.close()


def _incompressible_tree(tmp_path: Path) -> Path:
    """16 MB in 40 files of random bytes: a backup long enough to stop in the middle."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02d}").write_bytes(os.urandom(400_000))
    return src


def _backing_up(server: NdmpServer, load_drive: Callable[..., LoadedDrive],
                tmp_path: Path) -> tuple[LoadedDrive, Dma]:
    """A DMA running a LOCAL backup of an incompressible tree onto a 64 MiB
    cartridge, returned once the data service has processed 1 MB of it."""
    tape = load_drive(capacity=64 * 1024 * 1024)
    dma = Dma.connect(server.port)
    _local_backup(dma, tape.nst, _incompressible_tree(tmp_path))
    deadline = time.monotonic() + 20
    while dma.call(Message.DATA_GET_STATE).body.bytes_processed < 1_000_000:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return tape, dma


def _assert_cut_short(tape: LoadedDrive, tmp_path: Path) -> bytes:
    """The image on ``tape`` has no end-of-dump record: pyrestore calls it truncated and fails."""
    image = tmp_path / "part.img"
    image.write_bytes(tape_image(tape))
    py = subprocess.run([PYRESTORE, "-x", "-f", str(image)], cwd=tmp_path, capture_output=True, text=True,
                        timeout=60)
    assert py.returncode != 0 and "truncated" in py.stderr, (py.returncode, py.stderr)
    return image.read_bytes()


def test_a_dma_that_vanishes_mid_backup_leaves_no_complete_looking_image(server: NdmpServer,
                                                                         load_drive: Callable[..., LoadedDrive],
                                                                         tmp_path: Path) -> None:
    tape, dma = _backing_up(server, load_drive, tmp_path)
    before = len(server.log())
    dma.close()  # gone, mid-backup
    tape.wait_released(20, "the DMA went away")  # the server stops the dump and releases the drive
    assert 0 < len(_assert_cut_short(tape, tmp_path)) < 16_000_000
    time.sleep(0.2)
    said = [line for line in server.log()[before:] if " ERROR " in line or " WARNING " in line]
    assert len(said) == 1 and "the DMA went away with a backup running; stopping it" in said[0], said
    other = Dma.connect(server.port)  # and it serves the next DMA
    assert other.call(Message.DATA_GET_STATE).body.state == DataState.IDLE
    other.close()


def test_a_full_tape_cancels_the_backup_and_leaves_no_complete_looking_image(
        server: NdmpServer, load_drive: Callable[..., LoadedDrive], tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(8):
        (src / f"f{i}").write_bytes(os.urandom(500_000))
    tape = load_drive(capacity=2 * 1024 * 1024, early_warning=64 * 1024)
    out = ndmjob(server, "-c", "-f", tape.nst, "-B", "dump", "-C", str(src), "-E", "LEVEL=0", "-E", "UPDATE=n",
                 "-I", str(tmp_path / "idx"))
    assert 'SESS "Operation ended OKAY"' not in out, out
    _assert_cut_short(tape, tmp_path)


def test_data_abort_mid_backup_halts_aborted_and_the_image_is_cut(server: NdmpServer,
                                                                  load_drive: Callable[..., LoadedDrive],
                                                                  tmp_path: Path) -> None:
    tape, dma = _backing_up(server, load_drive, tmp_path)
    try:
        assert dma.call(Message.DATA_ABORT).error == Error.NO_ERR
        state = dma.call(Message.DATA_GET_STATE).body
        assert (state.state, state.halt_reason) == (DataState.HALTED, DataHaltReason.ABORTED)
        posts = []
        while (Message.NOTIFY_DATA_HALTED, DataHaltReason.ABORTED) not in posts:
            code, body = dma.next_post()
            posts.append((code, getattr(body, "reason", None)))
        assert dma.call(Message.DATA_ABORT).error == Error.ILLEGAL_STATE_ERR
        deadline = time.monotonic() + 20
        while dma.call(Message.MOVER_GET_STATE).body.state != MoverState.HALTED:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert dma.call(Message.DATA_STOP).error == Error.NO_ERR
        state = dma.call(Message.DATA_GET_STATE).body
        assert (state.state, state.halt_reason) == (DataState.IDLE, DataHaltReason.NA)
        assert dma.call(Message.MOVER_STOP).error == Error.NO_ERR
        assert dma.call(Message.TAPE_CLOSE).error == Error.NO_ERR
    finally:
        dma.close()
    _assert_cut_short(tape, tmp_path)


def test_a_backup_posts_its_history_then_data_halted_then_the_mover_halts(
        server: NdmpServer, load_drive: Callable[..., LoadedDrive], tmp_path: Path) -> None:
    """The order ndmjob's monitor needs to end without its 2 s wait for one more
    notice: the file history, NOTIFY_DATA_HALTED, and only then the image stream
    ends and the mover writes its last record and halts (NOTIFY_MOVER_HALTED)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(os.urandom(30_000))
    for i in range(300):  # more names than one post's batch of 256
        (src / f"e{i:03d}").touch()
    tape = load_drive()
    dma = Dma.connect(server.port)
    try:
        _local_backup(dma, tape.nst, src)
        posts: list[tuple[int, int | None]] = []
        batches: dict[int, list[int]] = {Message.FH_ADD_DIR: [], Message.FH_ADD_NODE: []}
        while not posts or posts[-1][0] != Message.NOTIFY_MOVER_HALTED:
            code, body = dma.next_post()
            posts.append((code, getattr(body, "reason", None)))
            if code in batches:
                batches[code].append(len(body.dirs if code == Message.FH_ADD_DIR else body.nodes))
        codes = [code for code, _ in posts if code != Message.LOG_MESSAGE]
        assert codes[-2:] == [Message.NOTIFY_DATA_HALTED, Message.NOTIFY_MOVER_HALTED], codes
        assert Message.FH_ADD_NODE in codes[:-2], codes
        # batched: . and .. of the root and 303 names; 303 files and the root
        assert batches == {Message.FH_ADD_DIR: [256, 49], Message.FH_ADD_NODE: [256, 48]}, batches
        assert (Message.NOTIFY_DATA_HALTED, DataHaltReason.SUCCESSFUL) in posts
        assert posts[-1][1] == 1  # CONNECT_CLOSED: the whole image is on tape
    finally:
        dma.close()
    tape.wait_released(20, "the DMA went away")
    image = tmp_path / "img"
    image.write_bytes(tape_image(tape))
    listing = subprocess.run([RESTORE, "-t", "-f", str(image)], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "./f2" in listing.stdout, listing.stderr


def test_the_movers_record_size_sets_the_blocking_factor(server: NdmpServer, load_drive: Callable[..., LoadedDrive],
                                                         tmp_path: Path) -> None:
    """``ndmjob -b 128``: MOVER_SET_RECORD_SIZE(64 KiB) makes a LOCAL backup's
    image one of blocking factor 64 (records of 64 KiB on tape, c_ntrec 64),
    which both restores read and a direct access recover reads by its own
    records; a record size that is no blocking factor from 4 to 256 KiB
    (``-b 4``: 2 KiB) is refused before anything is written."""
    from dumptool.format import Header, header_byte_order

    src = tmp_path / "src"
    make_tree(src)
    tape = load_drive(capacity=32 * 1024 * 1024)
    idx = tmp_path / "idx"
    ok(ndmjob(server, "-c", "-b", "128", "-f", tape.nst, "-B", "dump", "-C", str(src), "-E", "LEVEL=0",
              "-E", "UPDATE=n", "-I", str(idx)))
    drive = tape.shelf.open_drive(tape.index)
    try:
        drive.rewind()
        sizes = [len(drive.read(256 * 1024)) for _ in range(3)]
    finally:
        drive.close()
    assert sizes == [64 * 1024] * 3, sizes
    image = tmp_path / "img"
    image.write_bytes(tape_image(tape))
    first = image.read_bytes()[:1024]
    assert Header.unpack(first, header_byte_order(first)).c_ntrec == 64
    for tool in (RESTORE, PYRESTORE):
        r = subprocess.run([tool, "-t", "-f", str(image)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "./sub/zz.txt" in r.stdout, (tool, r.stderr)
    one = tmp_path / "one"
    one.mkdir()
    out = ndmjob(server, "-x", "-b", "128", "-f", tape.nst, "-B", "dump", "-C", str(one), "-J", str(idx),
                 "sub/zz.txt")
    ok(out)
    assert (one / "sub" / "zz.txt").read_text() == "wanted\n" and not (one / "big1").exists()
    read, _ranges = recover_read(out)
    assert read < image_size(idx) * 0.5, (read, image_size(idx))

    small = load_drive()
    dma = Dma.connect(server.port)
    try:
        assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(small.nst, 1)).error == Error.NO_ERR
        assert dma.call(Message.MOVER_SET_RECORD_SIZE, MoverSetRecordSizeRequest(2048)).error == Error.NO_ERR
        assert dma.call(Message.MOVER_LISTEN, MoverListenRequest(MoverMode.READ, AddrType.LOCAL)).error == 0
        assert dma.call(Message.DATA_CONNECT, DataConnectRequest(Addr(AddrType.LOCAL))).error == 0
        env = [Pval("FILESYSTEM", str(src)), Pval("UPDATE", "n")]
        reply = dma.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", env))
        assert reply.error == Error.ILLEGAL_ARGS_ERR
        assert dma.call(Message.DATA_GET_STATE).body.state == DataState.CONNECTED
    finally:
        dma.close()
    server.wait_for_log(r"the mover's record size 2048 sets no dump blocking factor \(records of 4 to 256 KiB\)")
    small.wait_released(20, "the DMA went away")
    assert tape_image(small) == b""  # nothing was written


def test_level_31_without_file_history(server: NdmpServer, load_drive: Callable[..., LoadedDrive],
                                       tmp_path: Path) -> None:
    """HIST=n posts no file history; LEVEL=31 (ONTAP's highest) runs on the
    level 0's DUMP_DATE (BASE_DATE) as its DATA_GET_ENV hands it back."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "old").write_text("x\n")
    time.sleep(1.1)  # dump compares whole seconds: older than the level 0's date

    def backup(*extra: Pval) -> tuple[dict[str, str], bytes]:
        tape = load_drive()
        dma = Dma.connect(server.port)
        try:
            _local_backup(dma, tape.nst, src, Pval("HIST", "n"), *extra)
            posts: list[tuple[int, int | None]] = []
            while not posts or posts[-1][0] != Message.NOTIFY_MOVER_HALTED:
                code, body = dma.next_post()
                posts.append((code, getattr(body, "reason", None)))
            assert (Message.NOTIFY_DATA_HALTED, DataHaltReason.SUCCESSFUL) in posts, posts
            assert not {Message.FH_ADD_DIR, Message.FH_ADD_NODE} & {code for code, _ in posts}, posts
            env = {p.name: p.value for p in dma.call(Message.DATA_GET_ENV).body.env}
        finally:
            dma.close()
        tape.wait_released(20, "the DMA went away")
        return env, tape_image(tape)

    env0, _image0 = backup()
    assert env0["LEVEL"] == "0" and env0["HIST"] == "n" and int(env0["DUMP_DATE"]) > 0, env0
    (src / "new").write_text("y\n")
    env31, image31 = backup(Pval("LEVEL", "31"), Pval("BASE_DATE", env0["DUMP_DATE"]))
    assert env31["LEVEL"] == "31" and env31["BASE_DATE"] == env0["DUMP_DATE"], env31
    image = tmp_path / "l31"
    image.write_bytes(image31)
    r = subprocess.run([PYRESTORE, "-t", "-f", str(image)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "./new" in r.stdout and "./old" not in r.stdout, (r.stdout, r.stderr)
