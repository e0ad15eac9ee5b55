"""The rmt protocol, both ends: the server byte for byte, RemoteDrive over
pyrmt, and real GNU tar (single and multi-volume) and Linux dump/restore
writing to and reading from a loopback drive through pyrmt.

The real programs reach pyrmt through a fake rsh that drops the host and
``-l user`` arguments, as ssh would, and runs pyrmt on the same pipes.
"""

from __future__ import annotations

import errno
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tapelib import (
    BufferTooSmall,
    DriveBusy,
    NoSuchDevice,
    Shelf,
    TapeError,
    TapeIOError,
    WriteProtected,
    open_device,
)
from tapelib.linux_st import pack_mtget, unpack_mtget
from tapelib.mtio import MtOp
from tapelib.rmt import OpenMode, ProtocolError, RemoteDrive, RmtServer
from tapelib.rmt.server import MAX_RECORD

from conftest import REPO, console_script

# -- helpers -----------------------------------------------------------------


def converse(request: bytes) -> bytes:
    """Everything the server answers to ``request``, followed by end of input."""
    out = io.BytesIO()
    RmtServer(io.BytesIO(request), out).serve()
    return out.getvalue()


def replies(data: bytes) -> list[bytes]:
    """Split a reply stream into status lines (``A..``/``E..``) and bodies
    where an ``E`` carries its message line."""
    stream = io.BytesIO(data)
    found = []
    while line := stream.readline():
        found.append(line)
        if line.startswith(b"E"):
            found.append(stream.readline())
    return found


def env_with_checkout() -> dict[str, str]:
    """The environment for the real programs: pyrmt runs this checkout's code
    even where the venv's editable install points at another tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("TAPE", None)
    return env


@pytest.fixture
def rmt_log(tmp_path: Path) -> Path:
    return tmp_path / "pyrmt.log"


@pytest.fixture
def fake_rsh(tmp_path: Path, rmt_log: Path) -> str:
    """An rsh that drops ``host`` and ``-l user`` and runs pyrmt on its pipes."""
    script = tmp_path / "fake-rsh"
    script.write_text(
        "#!/bin/sh\n"
        "# fake-rsh HOST [-l USER] COMMAND: run pyrmt here, whatever COMMAND says.\n"
        "shift\n"
        'if [ "$1" = "-l" ]; then shift 2; fi\n'
        f'exec "{console_script("pyrmt")}" --log "{rmt_log}"\n')
    script.chmod(0o755)
    return str(script)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("env", env_with_checkout())
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stderr}"
    return result


def make_tree(root: Path, seed: int, files: int, size: int) -> Path:
    """A folder of files with distinct pseudo-random contents, a subfolder and a symlink."""
    import random

    rng = random.Random(seed)
    (root / "sub").mkdir(parents=True)
    for i in range(files):
        where = root / ("sub" if i % 3 == 0 else ".") / f"file{seed}-{i}"
        where.write_bytes(rng.randbytes(rng.randrange(size // 2, size)))
    (root / "empty").write_bytes(b"")
    os.symlink("sub", root / "link")
    return root


def assert_same_tree(expected: Path, actual: Path, ignore: frozenset[str] = frozenset()) -> None:
    """Every name, file content and symlink target of ``expected`` is in ``actual``, and no more."""
    def listing(root: Path) -> dict[str, tuple[str, bytes]]:
        found = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                rel = str(path.relative_to(root))
                if rel.split("/")[0] in ignore:
                    continue
                if path.is_symlink():
                    found[rel] = ("link", os.readlink(path).encode())
                elif path.is_dir():
                    found[rel] = ("dir", b"")
                else:
                    found[rel] = ("file", path.read_bytes())
        return found

    want, got = listing(expected), listing(actual)
    assert sorted(got) == sorted(want)
    for rel in want:
        assert got[rel] == want[rel], f"{rel} differs"


def position(device: str, files: int) -> None:
    """Rewind ``device`` and space forward over ``files`` filemarks, with
    pymt when it is installed, else through the tapelib API."""
    if importlib.util.find_spec("tapelib.cli.pymt") is not None:
        pymt = console_script("pymt")
        run([pymt, "-f", device, "rewind"])
        if files:
            run([pymt, "-f", device, "fsf", str(files)])
        return
    with open_device(device) as tape:
        tape.rewind()
        tape.space_files(files)


# -- the server, byte for byte ------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ("65 O_WRONLY|O_CREAT", OpenMode(access=1, create=True)),  # GNU tar -c
    ("0 O_RDONLY", OpenMode()),  # tar -x, restore
    ("66 O_RDWR|O_CREAT", OpenMode(access=2, create=True)),  # tar -r
    ("1 O_WRONLY|O_CREAT|O_TRUNC", OpenMode(access=1, create=True, truncate=True)),  # dump
    ("577", OpenMode(access=1, create=True, truncate=True)),  # a number alone: Linux flags
    ("1", OpenMode(access=1)),
    ("WRONLY|CREAT", OpenMode(access=1, create=True)),  # GNU's short names
    ("1|64", OpenMode(access=1, create=True)),
    ("0 O_RDONLY|O_NONBLOCK|O_NDELAY|O_LARGEFILE", OpenMode()),
])
def test_open_mode_lines_of_every_client_parse(line: str, expected: OpenMode) -> None:
    assert OpenMode.parse(line) == expected


def test_open_mode_names_win_over_dumps_access_only_number() -> None:
    # dump sends only mode & O_ACCMODE as the number.
    assert OpenMode.parse("1 O_WRONLY|O_CREAT|O_TRUNC").truncate


@pytest.mark.parametrize("line", ["", "O_BOGUS", "3", "O_WRONLY|O_RDWR", "x y"])
def test_bad_open_mode_is_einval(tmp_path: Path, line: str) -> None:
    answer = converse(b"O%s\n%s\n" % (bytes(tmp_path / "f"), line.encode()))
    assert answer.startswith(b"E22\n")


def test_tar_create_session_writes_a_plain_file(tmp_path: Path) -> None:
    target = tmp_path / "archive.tar"
    answer = converse(b"O%s\n65 O_WRONLY|O_CREAT\nW5\nhelloC\n" % bytes(target))
    assert answer == b"A0\nA5\nA0\n"
    assert target.read_bytes() == b"hello"


def test_dump_mode_line_truncates_a_plain_file(tmp_path: Path) -> None:
    target = tmp_path / "dump.img"
    target.write_bytes(b"old contents that must go")
    answer = converse(b"O%s\n1 O_WRONLY|O_CREAT|O_TRUNC\nW3\nnewC\n" % bytes(target))
    assert answer == b"A0\nA3\nA0\n"
    assert target.read_bytes() == b"new"


def test_lseek_takes_offset_then_whence(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.write_bytes(bytes(range(100)))
    answer = converse(b"O%s\n0 O_RDONLY\nL10\n0\nR2\nL0\n1\nL-5\n2\nL0\n1\n" % bytes(target))
    assert answer == b"A0\nA10\nA2\n\x0a\x0bA12\nA95\nA95\n"


def test_missing_file_is_enoent_with_a_message(tmp_path: Path) -> None:
    lines = replies(converse(b"O%s\n0 O_RDONLY\n" % bytes(tmp_path / "nope")))
    assert lines[0] == b"E2\n"
    assert lines[1].strip()


def test_tape_operations_on_a_plain_file_are_enotty(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.write_bytes(b"x")
    lines = replies(converse(b"O%s\n0 O_RDONLY\nI6\n1\nS\nsF" % bytes(target)))
    assert lines[0] == b"A0\n"
    assert [lines[1], lines[3], lines[5]] == [b"E25\n"] * 3


def test_commands_without_an_open_device_are_ebadf() -> None:
    lines = replies(converse(b"R10\nC\nS"))
    assert [lines[0], lines[2], lines[4]] == [b"E9\n"] * 3


def test_unknown_command_is_einval_and_ends_the_session() -> None:
    out = io.BytesIO()
    server = RmtServer(io.BytesIO(b"V0\nX\nV0\n"), out)
    with pytest.raises(ProtocolError):
        server.serve()
    assert replies(out.getvalue()) == [b"A2\n", b"E22\n", b"Garbage command\n"]


def test_blank_lines_between_commands_are_skipped() -> None:
    assert converse(b"\n\nV0\n\n\nV0\n") == b"A2\nA2\n"


def test_premature_end_of_write_data_is_a_protocol_error(nst0: str) -> None:
    server = RmtServer(io.BytesIO(b"O%s\n65 O_WRONLY|O_CREAT\nW100\nshort" % nst0.encode()),
                       io.BytesIO())
    with pytest.raises(ProtocolError):
        server.serve()
    with open_device(nst0) as tape:  # the drive was released
        assert tape.status().online


def test_status_with_and_without_newline_sends_struct_mtget(nst0: str) -> None:
    answer = converse(b"O%s\n0 O_RDONLY\nS\nSSC\n" % nst0.encode())
    with open_device(nst0) as tape:
        body = pack_mtget(tape.status())
    assert answer == b"A0\n" + (b"A%d\n" % len(body) + body) * 3 + b"A0\n"
    assert unpack_mtget(body).bot


def test_drive_records_and_filemarks_through_read_write(nst0: str) -> None:
    converse(b"O%s\n65 O_WRONLY|O_CREAT\nW3\nabcW4\ndefgC\n" % nst0.encode())
    answer = converse(b"O%s\n0 O_RDONLY\nI6\n1\nR100\nR100\nR100\nR100\nR100\n" % nst0.encode())
    # The filemark written at close reads as A0; then end of data: A0 once, then EIO, as st.
    assert answer.startswith(b"A0\nA1\nA3\nabcA4\ndefgA0\nA0\nE5\n")


def test_record_too_long_for_the_count_is_consumed_as_on_st(nst0: str) -> None:
    converse(b"O%s\n65 O_WRONLY|O_CREAT\nW4\nabcdW2\nefC\n" % nst0.encode())
    answer = converse(b"O%s\n0 O_RDONLY\nI6\n1\nR2\nR2\n" % nst0.encode())
    assert replies(answer)[2] == b"E12\n"
    assert answer.endswith(b"A2\nef")


def test_end_of_input_after_writing_writes_a_filemark_and_saves_position(nst0: str) -> None:
    assert converse(b"O%s\n65 O_WRONLY|O_CREAT\nW4\ndata" % nst0.encode()) == b"A0\nA4\n"
    with open_device(nst0) as tape:
        assert (tape.status().file_number, tape.status().block_number) == (1, 0)
        tape.rewind()
        assert tape.read(100) == b"data"
        assert tape.read(100) == b""


def test_lseek_on_a_drive_is_espipe_so_tar_falls_back(nst0: str) -> None:
    lines = replies(converse(b"O%s\n0 O_RDONLY\nL0\n1\nL0\n7\n" % nst0.encode()))
    assert lines[1] == b"E%d\n" % errno.ESPIPE
    assert lines[3] == b"E22\n"


def test_ioctl_takes_linux_op_numbers_and_answers_the_count(nst0: str) -> None:
    answer = converse(b"O%s\n66 O_RDWR|O_CREAT\nI%d\n2\nI%d\n1\nI%d\n1\nI%d\n1\n"
                      % (nst0.encode(), MtOp.MTWEOF, MtOp.MTREW, MtOp.MTFSF, MtOp.MTTELL))
    assert answer == b"A0\nA2\nA1\nA1\nA1\n"


def test_version_probe_switches_ioctl_to_bsd_numbers(nst0: str) -> None:
    # BSD 0 is MTWEOF and 5 is MTREW; Linux 5 would be MTWEOF.
    answer = converse(b"O%s\n66 O_RDWR|O_CREAT\nI-1\n0\nI0\n1\nI5\n1\nsF" % nst0.encode())
    assert answer == b"A0\nA1\nA1\nA1\nA0\n"


def test_extended_ioctl_and_status_letters(nst0: str) -> None:
    converse(b"O%s\n65 O_WRONLY|O_CREAT\nW1\nxC\n" % nst0.encode())
    answer = converse(b"O%s\n0 O_RDONLY\ni4\n1\nsFsTsbi0\n0\nsq" % nst0.encode())
    lines = replies(answer)
    assert lines[:5] == [b"A0\n", b"A1\n", b"A1\n", b"A114\n", b"A0\n"]  # RMTI_EOM; file 1; SCSI-2; mt_bf
    assert lines[5] == b"E22\n"  # RMTI_CACHE: Linux has none
    assert lines[7] == b"E22\n"  # no such status letter


def test_write_protected_cartridge_refuses_write_opens(shelf: Shelf, nst0: str) -> None:
    shelf.set_write_protect("TEST01", True)
    lines = replies(converse(b"O%s\n65 O_WRONLY|O_CREAT\nO%s\n0 O_RDONLY\n" % (nst0.encode(), nst0.encode())))
    assert lines[0] == b"E%d\n" % errno.EROFS
    assert lines[1].strip()
    assert lines[2] == b"A0\n"


@pytest.mark.parametrize("mode", [b"65 O_WRONLY|O_CREAT", b"66 O_RDWR|O_CREAT", b"512 O_RDONLY|O_TRUNC"])
def test_a_shelfs_own_files_refuse_write_opens_as_plain_files(shelf: Shelf, nst0: str, mode: bytes) -> None:
    # a cartridge's file written in place would escape its drive: protection, busy drive, damage fences
    cartridge = shelf.cartridge_path("TEST01")
    with open_device(nst0, writable=True) as drive:
        drive.write(b"the backup")
    shelf.set_write_protect("TEST01", True)
    kept = {path: path.read_bytes() for path in (cartridge, cartridge.with_suffix(".json"),
                                                  shelf.path / "state.json", shelf.path / "shelf.json")}
    with open_device(nst0):  # the drive busy besides
        for path in kept:
            lines = replies(converse(b"O%s\n%s\nW4\njunkC\n" % (bytes(path), mode)))
            assert lines[0] == b"E%d\n" % errno.EPERM, (path, lines)
            assert b"own file, not a plain file: write to it" in lines[1]
            assert f"{shelf.path}/nst0".encode() in lines[1] and lines[1].count(b"\n") == 1
    assert {path: path.read_bytes() for path in kept} == kept
    # reading the cartridge's file as a plain file stays allowed
    answer = converse(b"O%s\n0 O_RDONLY\nR65536\n" % bytes(cartridge))
    assert answer.startswith(b"A0\nA") and b"the backup" in answer


def test_busy_drive_is_ebusy(nst0: str) -> None:
    with open_device(nst0):
        lines = replies(converse(b"O%s\n0 O_RDONLY\n" % nst0.encode()))
    assert lines[0] == b"E%d\n" % errno.EBUSY
    assert lines[1].strip()


def test_close_keeps_the_server_running_for_dumps_reopen(nst0: str) -> None:
    answer = converse(b"O%s\n1 O_WRONLY|O_CREAT|O_TRUNC\nW2\nhiC\nO%s\n0 O_RDONLY\nC\n"
                      % (nst0.encode(), nst0.encode()))
    assert answer == b"A0\nA2\nA0\nA0\nA0\n"


# -- pyrmt, the command -------------------------------------------------------


def test_pyrmt_ends_zero_at_end_of_input(tmp_path: Path) -> None:
    target = tmp_path / "f"
    result = subprocess.run([console_script("pyrmt")], input=b"O%s\n65 O_WRONLY|O_CREAT\nW2\nokC\n" % bytes(target),
                            capture_output=True, env=env_with_checkout(), timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"A0\nA2\nA0\n", b"")
    assert target.read_bytes() == b"ok"


def test_pyrmt_garbage_exits_nonzero_with_one_line() -> None:
    result = subprocess.run([console_script("pyrmt")], input=b"Zzz\n", capture_output=True,
                            env=env_with_checkout(), timeout=60)
    assert result.returncode != 0
    assert result.stdout == b"E22\nGarbage command\n"
    assert len(result.stderr.decode().strip().splitlines()) == 1


# -- RemoteDrive against pyrmt --------------------------------------------------


@pytest.fixture
def remote_env(monkeypatch: pytest.MonkeyPatch, fake_rsh: str) -> None:
    monkeypatch.setenv("RSH", fake_rsh)
    monkeypatch.setenv("RMT", console_script("pyrmt"))
    monkeypatch.setenv("PYTHONPATH", env_with_checkout()["PYTHONPATH"])


def test_remote_drive_writes_spaces_and_reads_back(remote_env: None, nst0: str) -> None:
    with open_device(f"localhost:{nst0}", writable=True) as tape:
        assert isinstance(tape, RemoteDrive)
        tape.write(b"file0-a")
        tape.write(b"file0-b")
        tape.write_filemarks(1)
        tape.write(b"file1")
        status = tape.status()
        assert (status.file_number, status.block_number) == (1, 1)
        assert tape.tell() == 4
    with open_device(f"someone@localhost:{nst0}") as tape:
        status = tape.status()
        assert (status.file_number, status.block_number) == (2, 0)  # past the filemark of close
        tape.rewind()
        assert tape.status().bot
        tape.space_files(1)
        assert tape.status().eof
        assert tape.read(100) == b"file1"
        assert tape.read(100) == b""
        tape.space_files(-2)  # before the first filemark: the end of file 0
        tape.space_records(-1)
        assert tape.read(100) == b"file0-b"
        tape.seek(0)
        with pytest.raises(BufferTooSmall):
            tape.read(2)
        assert tape.read(100) == b"file0-b"


def test_remote_drive_reports_errors_with_local_classes(remote_env: None, shelf: Shelf, nst0: str,
                                                        tmp_path: Path) -> None:
    with pytest.raises(NoSuchDevice):
        RemoteDrive(f"localhost:{tmp_path}/no-such-device")
    with open_device(nst0):
        with pytest.raises(DriveBusy):
            RemoteDrive(f"localhost:{nst0}")
    with RemoteDrive(f"localhost:{nst0}") as tape:
        with pytest.raises(TapeIOError):
            tape.read(100)  # blank tape: end of data
        with pytest.raises(TapeError):
            tape.write(b"read-only open")
    shelf.set_write_protect("TEST01", True)
    with pytest.raises(WriteProtected):
        RemoteDrive(f"localhost:{nst0}", writable=True)


def test_remote_drive_with_no_rsh_program_is_no_such_device(monkeypatch: pytest.MonkeyPatch,
                                                            nst0: str) -> None:
    monkeypatch.setenv("RSH", "/nonexistent/rsh")
    with pytest.raises(NoSuchDevice):
        RemoteDrive(f"localhost:{nst0}")


# -- real GNU tar ----------------------------------------------------------------


def tar(fake_rsh: str, *args: str) -> None:
    run(["tar", f"--rsh-command={fake_rsh}", *args])


def test_tar_writes_two_archives_as_two_tape_files_and_extracts_the_second(
        tmp_path: Path, fake_rsh: str, nst0: str) -> None:
    first = make_tree(tmp_path / "one", seed=1, files=12, size=40000)
    second = make_tree(tmp_path / "two", seed=2, files=9, size=70000)
    remote = f"localhost:{nst0}"
    tar(fake_rsh, "-cf", remote, "-C", str(first), ".")
    tar(fake_rsh, "-cf", remote, "-C", str(second), ".")
    position(nst0, files=1)
    out = tmp_path / "out"
    out.mkdir()
    tar(fake_rsh, "-xf", remote, "-C", str(out))
    assert_same_tree(second, out)
    position(nst0, files=0)
    out0 = tmp_path / "out0"
    out0.mkdir()
    tar(fake_rsh, "-xf", remote, "-C", str(out0))
    assert_same_tree(first, out0)


def swap_script(tmp_path: Path, shelf: Shelf) -> str:
    """A tar volume script that unloads drive 0 and loads the other of VOL1
    and VOL2: with the pytape command when it is installed, else through the
    Shelf API."""
    script = tmp_path / "swap-cartridge"
    if importlib.util.find_spec("tapelib.cli.pytape") is not None:
        pytape = console_script("pytape")
        body = (
            # mtx-style status: the drive's line says "VolumeTag = BARCODE".
            f'if "{pytape}" status "{shelf.path}" | grep -q "VolumeTag = VOL1"; '
            "then next=VOL2; else next=VOL1; fi\n"
            f'"{pytape}" unload "{shelf.path}" >/dev/null && '
            f'exec "{pytape}" load "{shelf.path}" "$next" >/dev/null\n')
    else:
        code = (
            "from tapelib import Shelf; "
            f"s = Shelf({str(shelf.path)!r}); "
            "cur = s.status().drives[0].barcode; s.unload(0); "
            "s.load('VOL2' if cur == 'VOL1' else 'VOL1', 0)")
        body = f'exec "{sys.executable}" -c "{code}"\n'
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


def test_tar_multi_volume_spans_two_cartridges_at_end_of_medium(
        tmp_path: Path, fake_rsh: str, rmt_log: Path) -> None:
    shelf = Shelf.create(tmp_path / "shelf", drives=1, slots=4)
    shelf.new_cartridge("VOL1", capacity=1024 * 1024)
    shelf.new_cartridge("VOL2", capacity=1024 * 1024)
    shelf.load("VOL1", 0)
    nst0 = str(shelf.device_path(0, rewind=False))
    src = make_tree(tmp_path / "src", seed=3, files=5, size=400000)  # 1.1 MiB or so
    swap = swap_script(tmp_path, shelf)
    remote = f"localhost:{nst0}"

    tar(fake_rsh, "-cM", "-F", swap, "-f", remote, "-C", str(src), ".")
    log = rmt_log.read_text()
    assert "E28 " in log  # the write after early warning: ENOSPC made tar change volumes
    assert len(re.findall(r"^O ", log, re.M)) == 2
    assert shelf.status().drives[0].barcode == "VOL2"

    shelf.unload(0)
    shelf.load("VOL1", 0)
    out = tmp_path / "out"
    out.mkdir()
    tar(fake_rsh, "-xM", "-F", swap, "-f", remote, "-C", str(out))
    assert_same_tree(src, out)


# -- real Linux dump and restore ------------------------------------------------------


@pytest.fixture
def loop_image(tmp_path: Path):
    """An 8 MiB ext4 image of a small tree, attached to a loop device (dump
    reads a block device, not an image file).  Yields (source tree, device)."""
    if os.geteuid() != 0:
        pytest.skip("dump needs root to read a loop device")
    for tool in ("mke2fs", "losetup", "dump", "restore"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make setup installs it)")
    src = make_tree(tmp_path / "src", seed=4, files=10, size=60000)
    image = tmp_path / "fs.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), "8M"],
                   check=True, capture_output=True)
    attach = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True)
    if attach.returncode != 0:
        pytest.skip(f"no loop device here: {attach.stderr.strip()}")
    device = attach.stdout.strip()
    try:
        yield src, device
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


@pytest.mark.root
def test_dump_and_restore_through_rmt(tmp_path: Path, fake_rsh: str, nst0: str,
                                      rmt_log: Path, loop_image: tuple[Path, str]) -> None:
    src, device = loop_image
    env = env_with_checkout() | {"RSH": fake_rsh, "RMT": console_script("pyrmt")}
    remote = f"localhost:{nst0}"
    run(["dump", "-0", "-f", remote, device], env=env, stdin=subprocess.DEVNULL)
    # dump closes, then reopens read-only on the same connection to rewind.
    assert len(re.findall(r"^O ", rmt_log.read_text(), re.M)) == 2

    position(nst0, files=0)
    listing = run(["restore", "-t", "-f", remote], env=env, stdin=subprocess.DEVNULL).stdout
    # restore -t lists "<inode>\t<name>" after a few header lines.
    names = {name for inode, _, name in (line.partition("\t") for line in listing.splitlines())
             if inode.strip().isdigit()}
    assert names >= {f"./{path.relative_to(src)}" for path in src.rglob("*")}

    position(nst0, files=0)
    out = tmp_path / "restored"
    out.mkdir()
    # restore asks which volume to start with, then whether to set the owner
    # and mode of '.': answer 1 and n.
    run(["restore", "-x", "-y", "-f", remote], env=env, cwd=out, input="1\nn\n")
    assert_same_tree(src, out, ignore=frozenset({"lost+found", "restoresymtable"}))


def test_a_write_larger_than_a_record_is_refused_on_a_file_too(tmp_path: Path) -> None:
    """W takes at most MAX_RECORD bytes on a plain file as on a drive: a bigger
    one is answered E22 at once and its bytes dropped, and the session goes on."""
    target = tmp_path / "file"
    big = MAX_RECORD + 1
    answer = converse(b"O%s\n66\nW%d\n%s" % (bytes(target), big, bytes(big)) + b"W3\nabc")
    assert replies(answer) == [b"A0\n", b"E22\n", b"record of %d bytes is larger than %d\n" % (big, MAX_RECORD),
                               b"A3\n"]
    assert target.read_bytes() == b"abc"


def test_pyrmt_answers_a_huge_write_count_in_one_line(tmp_path: Path) -> None:
    """W99999999999 (with 3 bytes after it) on a file: E22, then the short data ends the session
    in one line (it was a MemoryError traceback)."""
    request = b"O%s\n66\nW99999999999\nabc" % bytes(tmp_path / "file")
    done = subprocess.run([console_script("pyrmt")], input=request, capture_output=True, timeout=60)
    assert done.stdout == b"A0\nE22\nrecord of 99999999999 bytes is larger than %d\n" % MAX_RECORD
    assert (done.returncode, done.stderr) == (1, b"pyrmt: premature end of input in write data\n")
