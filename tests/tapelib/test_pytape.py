"""pytape manages a shelf as mtx manages a changer, plus cartridges.

Every test runs the installed ``pytape`` script as a separate process.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from cli_processes import drive_held, error_line, run_script
from tapelib import Shelf, open_device
from tapelib.cli.pytape import format_size, parse_size


def pytape(*args: str) -> subprocess.CompletedProcess[str]:
    return run_script("pytape", *args)


def ok(*args: str) -> str:
    """Run pytape; it must succeed quietly on stderr; returns stdout."""
    result = pytape(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def fails(*args: str, status: int = 1) -> str:
    """Run pytape; it must fail with ``status`` and one stderr line, returned."""
    result = pytape(*args)
    assert result.returncode == status, (result.stdout, result.stderr)
    return error_line(result)


def status(shelf: Path | Shelf) -> list[str]:
    path = shelf.path if isinstance(shelf, Shelf) else shelf
    return ok("status", str(path)).splitlines()


# -- round trip ------------------------------------------------------------------


def test_create_new_load_unload_transfer_protect_round_trip(tmp_path: Path) -> None:
    shelf = str(tmp_path / "lib")
    out = ok("create", shelf, "--drives", "2", "--slots", "3")
    assert f"{shelf}/nst0" in out
    assert ok("new", shelf, "VOL001", "--capacity", "1.5M") == "1\n"
    assert ok("new", shelf, "VOL002") == "2\n"
    assert status(Path(shelf)) == [
        f"  Storage Changer {shelf}:2 Drives, 3 Slots ( 0 Import/Export )",
        "Data Transfer Element 0:Empty",
        "Data Transfer Element 1:Empty",
        "      Storage Element 1:Full :VolumeTag=VOL001",
        "        Cartridge: capacity 1.5 MiB, 0 B used, writable",
        "      Storage Element 2:Full :VolumeTag=VOL002",
        "        Cartridge: capacity 10.0 GiB, 0 B used, writable",
        "      Storage Element 3:Empty",
    ]

    assert ok("load", shelf, "VOL001") == f"Loaded VOL001 into drive 0 ({shelf}/nst0).\n"
    with open_device(f"{shelf}/nst0", writable=True) as drive:
        drive.write(b"x" * 1000)
    lines = status(Path(shelf))
    assert lines[1] == "Data Transfer Element 0:Full (Storage Element 1 Loaded):VolumeTag = VOL001"
    assert lines[2] == "        Position: file 1, block 0, online, idle"
    assert lines[3].startswith("        Cartridge: capacity 1.5 MiB, ")
    assert not lines[3].endswith(", 0 B used, writable")
    assert "      Storage Element 1:Empty" in lines

    assert ok("protect", shelf, "VOL001") == "VOL001 is write-protected.\n"
    assert status(Path(shelf))[3].endswith(", write-protected")
    assert ok("unprotect", shelf, "VOL001") == "VOL001 is writable.\n"
    assert status(Path(shelf))[3].endswith(", writable")

    assert ok("unload", shelf) == "Unloaded VOL001 from drive 0 into slot 1.\n"
    assert ok("transfer", shelf, "1", "3") == "Moved VOL001 from slot 1 to slot 3.\n"
    assert ok("load", shelf, "3", "--drive", "1") == f"Loaded VOL001 into drive 1 ({shelf}/nst1).\n"
    lines = status(Path(shelf))
    assert lines[1] == "Data Transfer Element 0:Empty"
    assert lines[2] == "Data Transfer Element 1:Full (Storage Element 3 Loaded):VolumeTag = VOL001"
    assert lines[3] == "        Position: file 0, block 0, online, idle"
    assert lines[-1] == "      Storage Element 3:Empty"
    assert ok("unload", shelf, "--drive", "1", "--slot", "1") == "Unloaded VOL001 from drive 1 into slot 1.\n"
    with open_device(f"{shelf}/nst0") as drive:
        assert drive.status().door_open
    # The data travelled with the cartridge.
    ok("load", shelf, "VOL001")
    with open_device(f"{shelf}/nst0") as drive:
        assert drive.read(4096) == b"x" * 1000


def test_status_shows_a_drive_in_use_by_another_process(shelf: Shelf, nst0: str) -> None:
    with drive_held(nst0):
        assert status(shelf)[2] == "        Position: file 0, block 0, online, busy (in use by a process)"
    assert status(shelf)[2] == "        Position: file 0, block 0, online, idle"


def test_status_shows_an_ejected_cartridge_offline(shelf: Shelf, nst0: str) -> None:
    with open_device(nst0) as drive:
        drive.unload()
    assert status(shelf)[2].endswith(", offline, idle")


def test_protected_cartridge_refuses_pymt_weof_until_unprotected(shelf: Shelf, nst0: str) -> None:
    ok("protect", str(shelf.path), "TEST01")
    assert run_script("pymt", "-f", nst0, "weof").returncode == 1
    ok("unprotect", str(shelf.path), "TEST01")
    assert run_script("pymt", "-f", nst0, "weof").returncode == 0


# -- errors: one line, status 1 -----------------------------------------------------


def test_unknown_barcode(shelf: Shelf) -> None:
    assert "no cartridge NOPE" in fails("load", str(shelf.path), "NOPE", "--drive", "1")
    assert "no cartridge NOPE" in fails("protect", str(shelf.path), "NOPE")


def test_empty_or_missing_slot(shelf: Shelf) -> None:
    assert "slot 2 is empty" in fails("load", str(shelf.path), "2", "--drive", "1")
    assert "no slot 9" in fails("load", str(shelf.path), "9", "--drive", "1")


def test_an_all_digit_barcode_is_never_taken_for_another_cartridges_slot(tmp_path: Path) -> None:
    shelf = Shelf.create(tmp_path / "lib", slots=4)
    path = str(shelf.path)
    shelf.new_cartridge("000002", capacity=1 << 20)  # slot 1: the backup
    shelf.new_cartridge("000001", capacity=1 << 20)  # slot 2: the scratch tape
    shelf.new_cartridge("000003", capacity=1 << 20)  # slot 3: its own number
    line = fails("load", path, "000001")
    assert line == (f"pytape: {path}: 000001 is ambiguous: cartridge 000001 (in slot 2) or slot 1, which holds "
                    "000002: say barcode:000001 or slot:1")
    assert shelf.status().drives[0].barcode is None
    assert ok("load", path, "barcode:000001") == f"Loaded 000001 into drive 0 ({path}/nst0).\n"
    shelf.unload(0)
    assert ok("load", path, "slot:1") == f"Loaded 000002 into drive 0 ({path}/nst0).\n"
    shelf.unload(0)
    # unambiguous names keep working: a barcode in its own slot number, a slot number no barcode has
    assert ok("load", path, "000003") == f"Loaded 000003 into drive 0 ({path}/nst0).\n"
    shelf.unload(0)
    assert ok("load", path, "2") == f"Loaded 000001 into drive 0 ({path}/nst0).\n"
    shelf.unload(0)
    shelf.transfer(1, 4)  # slot 1 empty: 000001 can only be the barcode
    assert ok("load", path, "000001") == f"Loaded 000001 into drive 0 ({path}/nst0).\n"
    assert "no cartridge 7" in fails("load", path, "barcode:7", "--drive", "0")
    assert "slot 'x' is not a slot number" in fails("load", path, "slot:x")
    assert "slot 1 is empty" in fails("load", path, "slot:1")


def test_transfer_into_a_full_slot(shelf: Shelf) -> None:
    shelf.new_cartridge("A", capacity=1 << 20)
    shelf.new_cartridge("B", capacity=1 << 20)
    assert fails("transfer", str(shelf.path), "1", "2") == f"pytape: {shelf.path}: slot 2 is full"
    lines = status(shelf)
    assert "      Storage Element 1:Full :VolumeTag=A" in lines
    assert "      Storage Element 2:Full :VolumeTag=B" in lines


def test_unload_into_a_full_slot(shelf: Shelf) -> None:
    shelf.new_cartridge("A", capacity=1 << 20)  # slot 1, which TEST01 left
    shelf.new_cartridge("B", capacity=1 << 20)  # slot 2
    assert "slot 2 is not free" in fails("unload", str(shelf.path), "--slot", "2")


def test_loading_into_a_full_drive(shelf: Shelf) -> None:
    shelf.new_cartridge("A", capacity=1 << 20)
    line = fails("load", str(shelf.path), "A")
    assert "drive 0 already holds TEST01" in line


def test_unloading_an_empty_drive(shelf: Shelf) -> None:
    assert "drive 1 is empty" in fails("unload", str(shelf.path), "--drive", "1")


def test_busy_drive_can_be_neither_unloaded_nor_loaded(shelf: Shelf, nst0: str) -> None:
    shelf.new_cartridge("A", capacity=1 << 20)
    with drive_held(nst0):
        assert "busy" in fails("unload", str(shelf.path))
    with drive_held(str(shelf.device_path(1, rewind=False))):
        assert "busy" in fails("load", str(shelf.path), "A", "--drive", "1")
    assert status(shelf)[1] == "Data Transfer Element 0:Full (Storage Element 1 Loaded):VolumeTag = TEST01"


@pytest.mark.parametrize("verb", [["status"], ["new", "X"], ["load", "1"], ["unload"],
                                  ["transfer", "1", "2"], ["protect", "X"]])
def test_a_folder_that_is_not_a_shelf(tmp_path: Path, verb: list[str]) -> None:
    line = fails(verb[0], str(tmp_path), *verb[1:])
    assert line.startswith(f"pytape: {tmp_path}: not a tape shelf")


def test_create_refuses_a_folder_in_use(shelf: Shelf) -> None:
    assert "not an empty folder" in fails("create", str(shelf.path))


def test_duplicate_and_bad_barcodes(shelf: Shelf) -> None:
    assert "already exists" in fails("new", str(shelf.path), "TEST01")
    assert "bad barcode" in fails("new", str(shelf.path), "no spaces please")


def test_capacity_too_small(shelf: Shelf) -> None:
    assert "too small" in fails("new", str(shelf.path), "TINY", "--capacity", "1")


# -- usage errors: argparse, status 2 --------------------------------------------------


@pytest.mark.parametrize("args", [[], ["frob", "x"], ["new", "s", "B", "--capacity", "10X"],
                                  ["create", "s", "--drives", "two"], ["transfer", "s", "1"]])
def test_usage_errors_are_status_2(args: list[str]) -> None:
    result = pytape(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("pytape")


# -- sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "size"), [
    ("4096", 4096), ("512M", 512 << 20), ("1.5G", 3 << 29), ("10G", 10 << 30), ("10GiB", 10 << 30),
    ("1k", 1024), ("2T", 2 << 40), ("64KB", 64 << 10), (".5M", 1 << 19),
])
def test_sizes_parse_with_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "10X", "-1", "1.5.5", "1 0"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (3 << 29, "1.5 GiB"), (10 << 30, "10.0 GiB"),
])
def test_sizes_print_in_binary_units(size: int, text: str) -> None:
    assert format_size(size) == text
