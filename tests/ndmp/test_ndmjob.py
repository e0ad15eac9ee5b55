"""The real ndmjob (Amanda's NDMP client) against pyndmpd: its conformance
modes and its query, with each authentication type."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from pyndmpd_process import (  # noqa: F401
    NDMJOB,
    LoadedDrive,
    NdmpServer,
    load_drive,
    module_shelf,
    ndmp_server,
    run_ndmjob,
    start_server,
    tape,
)
from tapelib import Shelf


def _tests(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("TEST ")]


def test_ndmjob_test_mover_passes_all_100(ndmp_server: NdmpServer, tape: LoadedDrive) -> None:
    nst0 = tape.nst
    run = run_ndmjob("-o", "test-mover", "-T", f"127.0.0.1:{ndmp_server.port}/4n", "-f", nst0, "-v")
    assert run.returncode == 0, run.stdout
    assert 'TEST "FINAL test-mover Passed -- pass=100 warn=0 fail=0 (total 100)"' in run.stdout
    assert 'TEST "LOCAL and TCP addressing tested."' in run.stdout


def _own_server_test_tape(work: Path) -> subprocess.CompletedProcess:
    """``ndmjob -o test-tape`` against ndmjob's own server (``-o test-daemon``,
    which serves until its stdin closes; user ndmp, password ndmp) on a tape file."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (work / "simtape").touch()
    daemon = subprocess.Popen([NDMJOB, "-o", "test-daemon", "-p", str(port)], cwd=work, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert daemon.stdout.readline().strip() == b"READY"
        return run_ndmjob("-o", "test-tape", "-T", f"127.0.0.1:{port}/4t,ndmp,ndmp", "-f", str(work / "simtape"),
                          "-v")
    finally:
        daemon.stdin.close()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def test_ndmjob_test_tape_stops_where_ndmjob_itself_stops(ndmp_server: NdmpServer, tape: LoadedDrive,
                                                          tmp_path: Path) -> None:
    nst0 = tape.nst
    run = run_ndmjob("-o", "test-tape", "-T", f"127.0.0.1:{ndmp_server.port}/4n", "-f", nst0, "-v")
    # ndmjob cannot send the zero-length TAPE_WRITE of T-BW #6 (its own defect):
    # with any server the run ends there, exit status 1, after two passed phases.
    assert run.returncode == 1, run.stdout
    assert _tests(run.stdout) == [
        'TEST "Test T-OC -- Tape Open/Close"',
        'TEST "Test T-OC Passed -- pass=8 warn=0 fail=0 (total 8)"',
        'TEST "Test T-BGS -- Tape Get State Basics"',
        'TEST "Test T-BGS Passed -- pass=4 warn=0 fail=0 (total 4)"',
        'TEST "Test T-BW -- Tape Write Basics"',
    ], run.stdout
    failures = [line for line in run.stdout.splitlines() if "Failed" in line]
    assert failures == ['Test "T-BW #6 -- Failed NDMP4_TAPE_OPEN/NDMP9_NO_ERR got NDMP9_NO_ERR (error expected)"']
    # ndmjob's own server, in the same run: exactly as far, and no further
    own = _own_server_test_tape(tmp_path)
    assert (own.returncode, _tests(own.stdout), [line for line in own.stdout.splitlines() if "Failed" in line]) \
        == (run.returncode, _tests(run.stdout), failures), own.stdout
    # ndmjob left the tape open and vanished: the server releases the drive.
    tape.wait_released(10, "ndmjob went away")


def test_ndmjob_query_lists_drives_and_volume_sizes(start_server, shelf: Shelf, tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    server = start_server("--volume", str(volume))
    port = server.port
    run = run_ndmjob("-q", "-D", f"127.0.0.1:{port}/4n", "-T", f"127.0.0.1:{port}/4n", "-v")
    out = run.stdout
    assert "product    pyndmpd" in out
    assert "addr_types (2)  NDMP4_ADDR_LOCAL NDMP4_ADDR_TCP" in out
    assert "Backup type info of dump format" in out and "set        LEVEL=0" in out
    # direct access, incremental, UTF-8 names, dir/node file history, file lists (doc 6.3's 0x2dbc)
    assert "attrs      0x2dbc" in out, out
    for default in ("UPDATE=y", "HIST=y", "DIRECT=n", "RECURSIVE=y", "EXTRACT=n", "FORCE=n", "BASE_DATE=-1",
                    "TYPE=dump", "RESTARTABLE=y"):
        assert f'QR "    set        {default}"' in out, (default, out)
    for i in range(2):
        assert f"device     {shelf.path}/nst{i}" in out
        assert f"device     {shelf.path}/st{i}" in out
    st = os.statvfs(volume)
    # The sizes are the volume's own, from statvfs (used and free move as
    # other processes write to the same disk; the totals do not).
    assert f'QR "  File system {volume}"' in out, out
    assert re.search(rf'space +{st.f_blocks * st.f_frsize} total, \d+ used, \d+ avail', out), out
    assert f"inodes     {st.f_files} total" in out, out


def test_ndmjob_text_and_md5_auth_with_configured_user(start_server, nst0: str, tmp_path: Path) -> None:
    config = tmp_path / "pyndmpd.toml"
    config.write_text('auth = ["text", "md5"]\n[users]\nbackup = "s3cret"\n')
    port = start_server("--config", str(config)).port
    for agent in (f"127.0.0.1:{port}/4t,backup,s3cret", f"127.0.0.1:{port}/4m,backup,s3cret"):
        run = run_ndmjob("-o", "test-mover", "-T", agent, "-f", nst0)
        assert "FINAL test-mover Passed -- pass=100" in run.stdout, (agent, run.stdout)


def test_ndmjob_refused_for_wrong_password_and_unconfigured_auth(start_server, nst0: str,
                                                                tmp_path: Path) -> None:
    config = tmp_path / "pyndmpd.toml"
    config.write_text('[users]\nbackup = "s3cret"\n')
    server = start_server("--config", str(config))
    port = server.port
    for agent in (f"127.0.0.1:{port}/4t,backup,wrong", f"127.0.0.1:{port}/4m,backup,wrong",
                  f"127.0.0.1:{port}/4n"):
        run = run_ndmjob("-o", "test-mover", "-T", agent, "-f", nst0)
        assert "test-mover Passed" not in run.stdout, (agent, run.stdout)
        # ndmjob exits 0 here: its words are what say it was refused.
        assert re.search(r"connect-auth-(text|md5|none)-failed", run.stdout), (agent, run.stdout)
    server.wait_for_log(r"CONNECT_CLIENT_AUTH: NOT_AUTHORIZED_ERR: authentication NONE is not enabled")
    server.wait_for_log(r"CONNECT_CLIENT_AUTH: NOT_AUTHORIZED_ERR: wrong user or password for 'backup' \(MD5\)")


@pytest.mark.fuse
def test_ndmjob_query_gives_a_snapfs_volumes_own_sizes(start_server, tmp_path: Path) -> None:
    from snapfs import Volume
    from snapfs.cli.main import parse_size
    from test_data_filer import BIN, snapfs

    voldir, mnt = tmp_path / "vol", tmp_path / "mnt"
    mnt.mkdir()
    Volume.create(voldir, parse_size("48M"), 300, name="sized", block_size=4096).close()
    snapfs("mount", voldir, mnt)
    try:
        (mnt / "f").write_bytes(os.urandom(1_000_000))
        port = start_server("--volume", str(mnt)).port
        out = run_ndmjob("-q", "-D", f"127.0.0.1:{port}/4n", "-v").stdout
        st = os.statvfs(mnt)
        assert st.f_blocks * st.f_frsize < 64 << 20  # the volume's own size, not its host file system's
        assert f'QR "  File system {mnt}"' in out, out
        assert re.search(rf'space +{st.f_blocks * st.f_frsize} total, \d+ used, \d+ avail', out), out
        assert "fuse" in out.split(f"File system {mnt}")[1].split("File system")[0], out  # its type
    finally:
        subprocess.run([str(BIN / "snapfs"), "unmount", str(mnt)], capture_output=True)
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
