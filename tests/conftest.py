"""Fixtures shared by every test package: shelves, cartridges, FUSE gating."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tapelib import Shelf

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# A shell runs a background job with SIGINT ignored, and the commands the tests
# start would inherit that: the tests that interrupt a dump need it delivered.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """FUSE tests skip only where /dev/fuse is missing, and never under REQUIRE_FUSE=1."""
    if os.path.exists("/dev/fuse"):
        return
    if os.environ.get("REQUIRE_FUSE") == "1":
        raise pytest.UsageError("REQUIRE_FUSE=1 but /dev/fuse is missing: FUSE tests cannot run")
    skip = pytest.mark.skip(reason="/dev/fuse is missing on this machine")
    for item in items:
        if "fuse" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Under ``SNAPDUMP_NO_SKIPS=1`` (CI) a skipped test fails: CI installs every
    tool and runs as root, so a skip there can only hide a broken set-up."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("SNAPDUMP_NO_SKIPS") == "1" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped in CI, where nothing may skip: {reason}"


@contextlib.contextmanager
def tmpfs_at(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs of its own mounted (``-o options``) on a new *folder*, unmounted after (we run as root)."""
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def answering(command: list[str], cwd: Path, environ: dict[str, str], question: bytes,
              answer: bytes | Callable[[int], bytes], times: int, before: Callable[[int], None] | None = None,
              *, timeout: float = 60, what: str = "") -> str:
    """Run a restore, typing ``answer`` (or ``answer(n)`` for the n-th) each time it asks ``question`` for the
    next volume (after ``before(n)`` for the n-th question, which may load
    that volume); it must ask ``times`` times and exit 0 (a question more is
    answered ``none``).  What it printed."""
    proc = subprocess.Popen(command, cwd=cwd, env=environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    seen, asked, code = b"", 0, None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
            if seen.count(question) > asked:
                asked += 1
                if before is not None and asked <= times:
                    before(asked)
                reply = answer(asked) if callable(answer) else answer
                proc.stdin.write(reply if asked <= times else b"none\n")
                proc.stdin.flush()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = seen.decode(errors="replace")
    assert code == 0 and asked == times, f"{what}{command[0]} exited {code} after {asked} prompt(s):\n{text}"
    return text


def one_line(result: subprocess.CompletedProcess[str], text: str) -> None:
    """The command was refused (exit 1) in one stderr line that says *text*."""
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and text in result.stderr, result.stderr


def console_script(name: str) -> str:
    """Path of one of the project's console scripts in the test venv."""
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    assert found, f"console script {name} is not installed (run make test, which installs it)"
    return found


@pytest.fixture(scope="session", autouse=True)
def session_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tests' own state folder (SNAPDUMP_STATE_DIR, inherited by every
    pydump, pyrestore and pyndmpd they start): their dump and restore session
    slots never count against the machine's or another test run's."""
    folder = tmp_path_factory.mktemp("state")
    before = os.environ.get("SNAPDUMP_STATE_DIR")
    os.environ["SNAPDUMP_STATE_DIR"] = str(folder)
    yield folder
    if before is None:
        del os.environ["SNAPDUMP_STATE_DIR"]
    else:
        os.environ["SNAPDUMP_STATE_DIR"] = before


@pytest.fixture
def shelf(tmp_path: Path) -> Shelf:
    """A shelf with two drives, four slots and one 4 MiB cartridge, TEST01, in drive 0."""
    s = Shelf.create(tmp_path / "shelf", drives=2, slots=4)
    s.new_cartridge("TEST01", capacity=4 * 1024 * 1024)
    s.load("TEST01", drive=0)
    return s


@pytest.fixture
def nst0(shelf: Shelf) -> str:
    """The non-rewinding device name of the fixture shelf's drive 0."""
    return str(shelf.device_path(0, rewind=False))
