"""pyndmpd's command line: the daemon with its pid file, and every start-up
error as one line on stderr with status 1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import console_script
from dma import Dma
from ndmp.protocol import Error, Message
from tapelib import Shelf


def pyndmpd(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([console_script("pyndmpd"), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def _wait(predicate, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _ended(pid: int) -> bool:
    """The daemon has exited: no process, or a zombie its new parent (the machine's init, which
    may reap late) has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_daemon_writes_its_pid_file_serves_and_stops_on_sigterm(shelf: Shelf, tmp_path: Path) -> None:
    pid_file, log = tmp_path / "pyndmpd.pid", tmp_path / "pyndmpd.log"
    run = pyndmpd("--listen", "127.0.0.1:0", "--shelf", str(shelf.path), "--pid-file", str(pid_file),
                  "--log-file", str(log))
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    pid = int(pid_file.read_text())
    try:
        assert _wait(lambda: "serving NDMP v4" in log.read_text())
        port = int(log.read_text().split("port ")[1].split()[0])
        dma = Dma.connect(port)
        assert dma.call(Message.CONFIG_GET_CONNECTION_TYPE).error == Error.NO_ERR
        dma.close()
        # A second daemon with the same pid file is refused while the first lives.
        again = pyndmpd("--listen", "127.0.0.1:0", "--shelf", str(shelf.path), "--pid-file", str(pid_file))
        assert again.returncode == 1
        assert again.stderr == f"pyndmpd: {pid_file}: pyndmpd is already running as pid {pid} (or remove the stale pid file)\n"
    finally:
        os.kill(pid, signal.SIGTERM)
    assert _wait(lambda: not pid_file.exists())
    assert _wait(lambda: _ended(pid), timeout=30)
    assert "stopping (SIGTERM)" in log.read_text()


def test_a_sigterm_right_after_the_start_removes_the_pid_file(shelf: Shelf, tmp_path: Path) -> None:
    """SIGTERM the moment the command returns (the daemon has written its pid
    file and may not be serving yet): it stops and its pid file goes."""
    for k in range(3):
        pid_file = tmp_path / f"pyndmpd{k}.pid"
        run = pyndmpd("--listen", "127.0.0.1:0", "--shelf", str(shelf.path), "--pid-file", str(pid_file),
                      "--log-file", str(tmp_path / f"pyndmpd{k}.log"))
        assert run.returncode == 0, run.stderr
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        assert _wait(lambda: _ended(pid), timeout=30)
        assert not pid_file.exists(), k


def _busy_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock, sock.getsockname()[1]


@pytest.mark.parametrize("case", ["nothing", "no-shelf", "bad-volume", "bad-listen", "bad-host", "bad-config",
                                  "config-without-users", "port-in-use"])
def test_start_up_errors_are_one_line_and_status_1(case: str, shelf: Shelf, tmp_path: Path) -> None:
    busy, port = _busy_port()
    config = tmp_path / "c.toml"
    args = {
        "nothing": [],
        "no-shelf": ["--shelf", str(tmp_path / "nope")],
        "bad-volume": ["--shelf", str(shelf.path), "--volume", str(tmp_path / "nope")],
        "bad-listen": ["--shelf", str(shelf.path), "--listen", "127.0.0.1:http"],
        "bad-host": ["--shelf", str(shelf.path), "--listen", os.fsdecode(b"\xff:4000")],
        "bad-config": ["--shelf", str(shelf.path), "--config", str(config)],
        "config-without-users": ["--shelf", str(shelf.path), "--config", str(config)],
        "port-in-use": ["--shelf", str(shelf.path), "--listen", f"127.0.0.1:{port}"],
    }[case]
    config.write_text("auth = [\"md5\"]\n" if case == "config-without-users" else "users = [\n")
    expected = {
        "nothing": "nothing to serve: give at least one --shelf (or --volume)",
        "no-shelf": f"{tmp_path}/nope: not a tape shelf (no shelf.json; make one with 'pytape create')",
        "bad-volume": f"--volume {tmp_path}/nope: not a directory",
        "bad-listen": "--listen 127.0.0.1:http: the port must be a number from 0 to 65535",
        "bad-host": "--listen \\udcff:4000: not a host name or address",  # (the byte as Python shows it)
        "bad-config": f"{config}: not a valid TOML file",
        "config-without-users": f"{config}: text or md5 authentication needs at least one user in [users]",
        "port-in-use": f"cannot listen on 127.0.0.1:{port}: address already in use",
    }[case]
    run = pyndmpd("--foreground", *args)
    busy.close()
    assert run.returncode == 1, run
    assert run.stderr.startswith(f"pyndmpd: {expected}") and run.stderr.count("\n") == 1, run.stderr


def test_daemon_with_a_log_file_it_cannot_open_does_not_start(shelf: Shelf, tmp_path: Path) -> None:
    pid_file = tmp_path / "pyndmpd.pid"
    run = pyndmpd("--listen", "127.0.0.1:0", "--shelf", str(shelf.path), "--pid-file", str(pid_file),
                  "--log-file", str(tmp_path / "no" / "such.log"))
    assert run.returncode == 1
    assert run.stderr == f"pyndmpd: {tmp_path}/no/such.log: No such file or directory\n"
    assert not pid_file.exists()


def test_a_pid_file_whose_pid_was_reused_does_not_stop_the_daemon(shelf: Shelf, tmp_path: Path) -> None:
    """The pid file names a live process that started after the file was
    written (its number reused): not a pyndmpd, so the daemon starts; a live
    process that had started by then is taken for one and refused."""
    pid_file = tmp_path / "pyndmpd.pid"
    other = subprocess.Popen(["sleep", "60"])
    try:
        pid_file.write_text(f"{other.pid}\n")
        os.utime(pid_file, (time.time() - 3600, time.time() - 3600))  # written an hour before it started
        run = pyndmpd("--listen", "127.0.0.1:0", "--shelf", str(shelf.path), "--pid-file", str(pid_file),
                      "--log-file", str(tmp_path / "log"))
        assert (run.returncode, run.stderr) == (0, ""), run.stderr
        pid = int(pid_file.read_text())
        assert pid != other.pid
        assert _wait(lambda: "serving NDMP v4" in (tmp_path / "log").read_text())
        os.kill(pid, signal.SIGTERM)
        assert _wait(lambda: not pid_file.exists())
        pid_file.write_text(f"{other.pid}\n")  # written after it started
        run = pyndmpd("--listen", "127.0.0.1:0", "--shelf", str(shelf.path), "--pid-file", str(pid_file))
        assert run.returncode == 1 and f"already running as pid {other.pid}" in run.stderr, run.stderr
    finally:
        other.kill()
        other.wait()
