"""A running pyndmpd for the NDMP tests (fixtures the test modules import):
a real process on 127.0.0.1, a free port, the fixture shelf's drives, its
log collected line by line; and ndmjob, the real client."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import console_script
from tapelib import DriveBusy, Shelf

NDMJOB = "/usr/lib/amanda/ndmjob"
_SERVING = re.compile(r"serving NDMP v4 on (\S+) port (\d+)")


@dataclass
class NdmpServer:
    process: subprocess.Popen
    port: int = 0
    lines: list[str] = field(default_factory=list)

    def log(self) -> list[str]:
        return list(self.lines)

    def wait_for_log(self, pattern: str, timeout: float = 10) -> str:
        """The first log line matching ``pattern`` (waiting for it)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log():
                if rx.search(line):
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line matches {pattern!r}; log:\n" + "\n".join(self.log()))


def _start(args: list[str]) -> NdmpServer:
    proc = subprocess.Popen([console_script("pyndmpd"), "--foreground", "--listen", "127.0.0.1:0", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    server = NdmpServer(proc)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            server.lines.append(line.rstrip("\n"))
            match = _SERVING.search(line)
            if match:
                server.port = int(match.group(2))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(15) or not server.port:
        proc.kill()
        raise AssertionError("pyndmpd did not start:\n" + "\n".join(server.lines))
    return server


@pytest.fixture
def start_server(shelf: Shelf) -> Iterator[Callable[..., NdmpServer]]:
    """Start pyndmpd serving the fixture shelf (plus any arguments given)."""
    started: list[NdmpServer] = []

    def start(*extra: str, shelves: list[Path] | None = None) -> NdmpServer:
        args = []
        for path in shelves or [shelf.path]:
            args += ["--shelf", str(path)]
        server = _start(args + list(extra))
        started.append(server)
        return server

    yield start
    for server in started:
        print("pyndmpd log:", *server.log(), sep="\n")  # shown when a test fails
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@dataclass(frozen=True)
class LoadedDrive:
    """A drive of the module's shelf holding a fresh cartridge of its own."""

    shelf: Shelf
    index: int
    barcode: str

    @property
    def nst(self) -> str:
        return str(self.shelf.device_path(self.index, rewind=False))

    @property
    def st(self) -> str:
        return str(self.shelf.device_path(self.index, rewind=True))

    def wait_released(self, seconds: float, why: str) -> None:
        """Wait until the drive can be opened: the server let it go (``why``
        names what should have made it, for the failure message)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.shelf.open_drive(self.index).close()
                return
            except DriveBusy:
                assert time.monotonic() < deadline, f"the drive is still held after {why}"
                time.sleep(0.05)


#: Drives on the module's shelf: each test that loads one gets its own.
MODULE_DRIVES = 32


@pytest.fixture(scope="module")
def module_shelf(tmp_path_factory: pytest.TempPathFactory) -> Shelf:
    return Shelf.create(tmp_path_factory.mktemp("ndmp") / "shelf", drives=MODULE_DRIVES, slots=2 * MODULE_DRIVES)


@pytest.fixture(scope="module")
def ndmp_server(module_shelf: Shelf) -> Iterator[NdmpServer]:
    """One pyndmpd for a test module, serving the module's shelf."""
    server = _start(["--shelf", str(module_shelf.path)])
    yield server
    print("pyndmpd log:", *server.log(), sep="\n")
    server.process.terminate()
    server.process.wait(10)


@pytest.fixture
def load_drive(module_shelf: Shelf) -> Callable[..., LoadedDrive]:
    """Load a new blank cartridge (4 MiB unless told) into the next empty drive."""

    def load(capacity: int = 4 * 1024 * 1024, early_warning: int | None = None) -> LoadedDrive:
        index = next(i for i, d in enumerate(module_shelf.status().drives)
                     if d.barcode is None and i < MODULE_DRIVES - 1)  # the last stays empty
        barcode = f"T{index:02d}"
        module_shelf.new_cartridge(barcode, capacity=capacity, early_warning=early_warning)
        module_shelf.load(barcode, drive=index)
        return LoadedDrive(module_shelf, index, barcode)

    return load


@pytest.fixture
def tape(load_drive: Callable[..., LoadedDrive]) -> LoadedDrive:
    return load_drive()


def run_ndmjob(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """ndmjob with its output (it prints everything on stdout and stderr mixed)."""
    return subprocess.run([NDMJOB, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
