"""A pydump killed while it writes to a shelf drive leaves its tape file ended
by a filemark, as Linux st's close does for a killed writer: ``pymt eod`` and
the next dump then start a tape file of their own, and ``pyrestore -s``
reaches every dump (issue 9, case 6)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from cli_processes import checkout_env, run_script
from conftest import console_script
from tapelib import Shelf

FILES = 16
FILE_SIZE = 1024 * 1024


def make_tree(root: Path) -> list[str]:
    root.mkdir()
    block = os.urandom(64 * 1024)
    for i in range(FILES):
        (root / f"f{i:02}").write_bytes(block[i:] * (FILE_SIZE // len(block)) + block[:i])
    return sorted(f"./f{i:02}" for i in range(FILES))


def listed(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The file names of a ``pyrestore -t`` listing."""
    return sorted(line.split("\t")[-1] for line in result.stdout.splitlines() if "\t./f" in line)


def file_number(nst0: str) -> int:
    status = run_script("pymt", "-f", nst0, "status")
    assert status.returncode == 0, status.stderr
    line = next(line for line in status.stdout.splitlines() if line.startswith("File number="))
    return int(line.split("=")[1].split(",")[0])


def kill_pydump_mid_write(nst0: str, tree: Path, cartridge: Path) -> None:
    """Start a real pydump on ``nst0`` and SIGKILL it once it has written
    some megabytes of its image (well before its end)."""
    start = cartridge.stat().st_size
    proc = subprocess.Popen([console_script("pydump"), "-0", "-f", nst0, str(tree)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=checkout_env())
    try:
        deadline = time.monotonic() + 60
        while cartridge.stat().st_size < start + 2 * 1024 * 1024:
            assert proc.poll() is None, "pydump ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Killed mid-write: the sidecar still says a writer has it open.
    assert json.loads(cartridge.with_suffix(".json").read_text())["clean"] is False


def test_a_killed_pydump_leaves_a_filemark_and_the_next_dump_a_file_of_its_own(tmp_path: Path) -> None:
    shelf = Shelf.create(tmp_path / "shelf", drives=1, slots=1)
    shelf.new_cartridge("KILL01", capacity=1024**3)
    shelf.load("KILL01")
    nst0 = str(shelf.device_path(0, rewind=False))
    cartridge = shelf.cartridge_path("KILL01")
    names = make_tree(tmp_path / "tree")

    first = run_script("pydump", "-0", "-f", nst0, str(tmp_path / "tree"))
    assert first.returncode == 0, first.stderr
    assert file_number(nst0) == 1
    kill_pydump_mid_write(nst0, tmp_path / "tree", cartridge)

    # The killed dump's file is ended: the drive stands after its filemark.
    assert file_number(nst0) == 2
    eod = run_script("pymt", "-f", nst0, "eod")
    assert eod.returncode == 0, eod.stderr
    assert file_number(nst0) == 2
    second = run_script("pydump", "-0", "-f", nst0, str(tmp_path / "tree"))
    assert second.returncode == 0, second.stderr
    assert file_number(nst0) == 3

    for number in (1, 3):
        assert run_script("pymt", "-f", nst0, "rewind").returncode == 0
        restored = run_script("pyrestore", "-t", "-f", nst0, "-s", str(number))
        assert restored.returncode == 0, (number, restored.stderr)
        assert listed(restored) == names, number
    # The killed dump's own file is there too, between them, as far as it got.
    assert run_script("pymt", "-f", nst0, "rewind").returncode == 0
    assert run_script("pymt", "-f", nst0, "fsf", "3").returncode == 0
    assert run_script("pymt", "-f", nst0, "fsf", "1").returncode == 2  # nothing after the third dump
