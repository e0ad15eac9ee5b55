"""Damage to a cartridge, its sidecar or the drive state destroys nothing
(issue 9, case 7 and the crashes): positioning never succeeds at a wrong
place, a write after a failed one is refused until the operator positions
the drive, and every damaged field is one clear line and a non-zero exit."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Callable

import pytest

from cli_processes import error_line, run_script
from tapelib import MediumError, Shelf, open_device
from tapelib.awstape import AWSTAPE_HEADER_SIZE


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shelf whose cartridge holds three pydump images, rewound, and the
    tree they dump: made once, copied for each test."""
    root = tmp_path_factory.mktemp("damage")
    tree = root / "tree"
    tree.mkdir()
    for i in range(3):
        (tree / f"file{i}").write_bytes(bytes([65 + i]) * 30_000)
    shelf = Shelf.create(root / "shelf", drives=1, slots=1)
    shelf.new_cartridge("DMG01", capacity=64 * 1024 * 1024)
    shelf.load("DMG01")
    nst0 = str(shelf.device_path(0, rewind=False))
    for _ in range(3):
        assert run_script("pydump", "-0", "-f", nst0, str(tree)).returncode == 0
    assert run_script("pymt", "-f", nst0, "rewind").returncode == 0
    return root


@pytest.fixture
def dumped(template: Path, tmp_path: Path) -> tuple[Shelf, str, Path]:
    """A copy of the template: its shelf, drive 0's device name, the tree."""
    shutil.copytree(template / "shelf", tmp_path / "shelf")
    shelf = Shelf(tmp_path / "shelf")
    return shelf, str(shelf.device_path(0, rewind=False)), template / "tree"


def headers(data: bytes) -> list[int]:
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        offset += AWSTAPE_HEADER_SIZE + struct.unpack_from("<H", data, offset)[0]
    return offsets


def edit_json(path: Path, edit: Callable[[dict], object]) -> None:
    """Load the JSON file ``path``, let ``edit`` change it in place, write it back."""
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def corrupt_length(path: Path, index: int, value: int) -> bytes:
    """Give the ``index``-th header (negative: from the end) another length;
    returns the damaged file's bytes."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, headers(bytes(data))[index], value)
    path.write_bytes(data)
    return bytes(data)


def test_eod_on_a_corrupted_length_near_the_end_fails_and_the_next_dump_destroys_nothing(
        dumped: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = dumped
    path = shelf.cartridge_path("DMG01")
    damaged = corrupt_length(path, -5, 12345)

    eod = run_script("pymt", "-f", nst0, "eod")
    assert eod.returncode == 2 and "damaged" in error_line(eod)
    status = run_script("pymt", "-f", nst0, "status")
    assert "Writes refused" in status.stdout
    dump = run_script("pydump", "-0", "-f", nst0, str(tree))
    assert dump.returncode != 0 and "not writing" in dump.stderr and "Traceback" not in dump.stderr
    assert path.read_bytes() == damaged  # every earlier dump still there

    # Positioned explicitly, the operator may write again (here: over it all).
    assert run_script("pymt", "-f", nst0, "rewind").returncode == 0
    assert run_script("pydump", "-0", "-f", nst0, str(tree)).returncode == 0


def test_an_append_after_a_failed_eod_cannot_destroy_the_intact_data_beyond_the_damage(
        dumped: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = dumped
    path = shelf.cartridge_path("DMG01")
    # A header in the second dump is garbage; the third dump beyond it is intact.
    data = bytearray(path.read_bytes())
    offsets = headers(bytes(data))
    mark = next(i for i, off in enumerate(offsets) if data[off + 4] == 0x40)
    first_mark, damage = offsets[mark], offsets[mark + 2]
    data[damage:damage + 6] = b"\xde\xad\xbe\xef\xfe\xed"
    path.write_bytes(data)

    assert run_script("pymt", "-f", nst0, "fsf", "1").returncode == 0
    eod = run_script("pymt", "-f", nst0, "eod")
    assert eod.returncode == 2, eod.stdout
    for writer in (["pydump", "-0", "-f", nst0, str(tree)], ["pymt", "-f", nst0, "weof"]):
        result = run_script(*writer)
        assert result.returncode != 0 and "not writing" in result.stderr, writer
    assert path.read_bytes() == bytes(data)
    # Reading still goes as far as the damage.
    with open_device(nst0) as tape:
        tape.rewind()
        tape.space_files(1)
        assert len(tape.read(1 << 20)) > 0
    # erase says it destroys everything from the head on; after it, writes go.
    assert run_script("pymt", "-f", nst0, "fsf", "1").returncode == 0
    assert run_script("pymt", "-f", nst0, "erase").returncode == 0
    assert run_script("pydump", "-0", "-f", nst0, str(tree)).returncode == 0
    assert path.read_bytes()[:first_mark + 6] == bytes(data[:first_mark + 6])


def test_a_remembered_place_that_is_no_block_boundary_fences_writes(dumped: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = dumped
    path = shelf.cartridge_path("DMG01")
    before = path.read_bytes()
    edit_json(shelf.path / "state.json", lambda state: state["drives"][0]["position"].update(
        offset=headers(before)[-3] + 3, lba=40, file_number=2))

    dump = run_script("pydump", "-0", "-f", nst0, str(tree))
    assert dump.returncode != 0 and "not writing" in dump.stderr  # it used to write at BOT
    assert path.read_bytes() == before
    assert run_script("pymt", "-f", nst0, "eod").returncode == 0
    assert run_script("pydump", "-0", "-f", nst0, str(tree)).returncode == 0
    assert path.read_bytes().startswith(before)


def test_a_sidecar_that_does_not_match_its_file_is_not_trusted(dumped: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = dumped
    path = shelf.cartridge_path("DMG01")
    before = path.read_bytes()
    inside = headers(before)[3]  # an end of data well inside the first dump
    edit_json(path.with_suffix(".json"), lambda meta: meta.update(end=inside, size=inside))

    assert run_script("pymt", "-f", nst0, "eod").returncode == 0
    assert run_script("pydump", "-0", "-f", nst0, str(tree)).returncode == 0
    assert path.read_bytes().startswith(before)


def test_a_file_cut_short_after_a_filemark_is_damage_and_its_sidecar_kept(dumped: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = dumped
    path, sidecar = shelf.cartridge_path("DMG01"), shelf.cartridge_path("DMG01").with_suffix(".json")
    whole = path.read_bytes()
    first_mark = next(off for off in headers(whole) if whole[off + 4] == 0x40)
    cut = first_mark + AWSTAPE_HEADER_SIZE  # tape file 0 and its filemark kept: it scans as a whole tape
    path.write_bytes(whole[:cut])
    recorded = sidecar.read_text()
    missing = f"cut short at byte {cut}: {len(whole) - cut} bytes missing"

    status = run_script("pymt", "-f", nst0, "status")  # an exclusive open: it used to rewrite the sidecar
    assert status.returncode == 0 and f"Damaged ({missing})" in status.stdout, status.stdout
    assert f"damaged ({missing})" in run_script("pytape", "status", str(shelf.path)).stdout
    eod = run_script("pymt", "-f", nst0, "eod")
    assert eod.returncode == 2 and missing in error_line(eod)
    dump = run_script("pydump", "-0", "-f", nst0, str(tree))
    assert dump.returncode != 0 and "not writing" in dump.stderr and "Traceback" not in dump.stderr
    assert run_script("pymt", "-f", nst0, "rewind").returncode == 0
    assert run_script("pymt", "-f", nst0, "fsf", "1").returncode == 0
    read = run_script("pyrestore", "-t", "-f", nst0)
    assert read.returncode == 1 and missing in read.stderr
    assert sidecar.read_text() == recorded and path.read_bytes() == whole[:cut]  # the evidence stays
    # tape file 0 still reads; written from an explicit place, the cartridge is whole again
    assert run_script("pymt", "-f", nst0, "rewind").returncode == 0
    assert run_script("pyrestore", "-t", "-f", nst0).returncode == 0
    assert run_script("pymt", "-f", nst0, "fsf", "1").returncode == 0
    assert run_script("pymt", "-f", nst0, "erase").returncode == 0
    assert run_script("pydump", "-0", "-f", nst0, str(tree)).returncode == 0
    status = run_script("pymt", "-f", nst0, "status")
    assert "Damaged" not in status.stdout and json.loads(sidecar.read_text())["size"] == path.stat().st_size


BAD_SIDECAR_FIELDS = [
    ("tail_length", -1), ("tail_length", "6"), ("end", None), ("capacity", 2), ("capacity", True),
    ("early_warning", 10**12), ("write_protected", "no"), ("clean", 1), ("version", 9), ("barcode", 7),
]


def test_every_bad_sidecar_field_is_one_line_for_every_tool(dumped: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = dumped
    path = shelf.cartridge_path("DMG01")
    before = path.read_bytes()
    meta_file = path.with_suffix(".json")
    good = json.loads(meta_file.read_text())
    for field, value in BAD_SIDECAR_FIELDS:
        meta_file.write_text(json.dumps({**good, field: value}))
        tools = [["pymt", "-f", nst0, "status"]]
        if (field, value) == ("tail_length", -1):  # pydump used to show a traceback here
            tools += [["pydump", "-0", "-f", nst0, str(tree)], ["pyrestore", "-t", "-f", nst0]]
        for tool in tools:
            result = run_script(*tool)
            assert result.returncode != 0, (tool, field, value)
            assert "Traceback" not in result.stderr
            assert f"damaged cartridge metadata: {field}" in result.stderr, (tool, result.stderr)
    assert path.read_bytes() == before


def bad_states(state: dict) -> dict[str, dict]:
    """Damaged copies of a drive state, by what is wrong with them."""
    def changed(edit) -> dict:  # type: ignore[no-untyped-def]
        copy = json.loads(json.dumps(state))
        edit(copy, copy["drives"][0], copy["drives"][0]["position"])
        return copy
    return {
        "no position": changed(lambda st, drive, pos: drive.pop("position")),
        "offset x": changed(lambda st, drive, pos: pos.update(offset="x")),
        "offset -6": changed(lambda st, drive, pos: pos.update(offset=-6)),
        "lba null": changed(lambda st, drive, pos: pos.update(lba=None)),
        "eof 9": changed(lambda st, drive, pos: pos.update(eof=9)),
        "rw 'w'": changed(lambda st, drive, pos: pos.update(rw="w")),
        "online 1": changed(lambda st, drive, pos: pos.update(online=1)),
        "block_size 1.5": changed(lambda st, drive, pos: pos.update(block_size=1.5)),
        "no file_number": changed(lambda st, drive, pos: pos.pop("file_number")),
        "position []": changed(lambda st, drive, pos: drive.update(position=[])),
        "barcode 7": changed(lambda st, drive, pos: drive.update(barcode=7)),
        "source_slot 0": changed(lambda st, drive, pos: drive.update(source_slot=0)),
        "slots short": changed(lambda st, drive, pos: st.update(slots=[])),
        "drives {}": changed(lambda st, drive, pos: st.update(drives={})),
        "in two places": changed(lambda st, drive, pos: st.update(slots=["DMG01"])),
    }


def test_every_bad_drive_state_field_is_one_line(dumped: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, _tree = dumped
    state_file = shelf.path / "state.json"
    for change, state in bad_states(json.loads(state_file.read_text())).items():
        state_file.write_text(json.dumps(state))
        result = run_script("pymt", "-f", nst0, "status")
        assert result.returncode != 0, change
        assert "damaged drive state" in error_line(result), change
    pytape = run_script("pytape", "status", str(shelf.path))
    assert pytape.returncode != 0 and "damaged drive state" in error_line(pytape)


def test_pytape_unload_resets_a_damaged_position(dumped: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, _tree = dumped
    state_file = shelf.path / "state.json"
    state_file.write_text(json.dumps(bad_states(json.loads(state_file.read_text()))["offset x"]))
    assert run_script("pytape", "unload", str(shelf.path)).returncode == 0
    assert run_script("pytape", "load", str(shelf.path), "DMG01").returncode == 0
    assert run_script("pymt", "-f", nst0, "status").returncode == 0


def test_a_read_that_meets_a_damaged_segment_fails_and_the_drive_still_closes(shelf: Shelf, nst0: str) -> None:
    with open_device(nst0, writable=True) as tape:
        tape.write(bytes(200_000))  # four segments
    path = shelf.cartridge_path("TEST01")
    data = bytearray(path.read_bytes())
    second = AWSTAPE_HEADER_SIZE + 0xFFFF
    data[second + 4] = 0x40  # the second segment's header now says "tapemark"
    path.write_bytes(data)
    with pytest.raises(MediumError):
        with open_device(nst0) as tape:  # the error leaves the block: the close unmaps the file
            tape.rewind()
            tape.read(1 << 20)
    assert path.read_bytes() == data


def test_pytape_status_beside_a_live_writer_changes_nothing(shelf: Shelf, nst0: str) -> None:
    path = shelf.cartridge_path("TEST01")
    with open_device(nst0, writable=True) as tape:
        tape.write(b"a record the writer has not ended with a filemark yet")
        before = path.read_bytes(), path.with_suffix(".json").read_bytes()
        assert json.loads(before[1])["clean"] is False
        status = run_script("pytape", "status", str(shelf.path))
        assert status.returncode == 0, status.stderr
        # Only the drive's holder may end a dead writer's file; this one lives.
        assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
        tape.write(b"its second record")
    with open_device(nst0) as tape:
        tape.rewind()
        assert [tape.read(100) for _ in range(3)] == [
            b"a record the writer has not ended with a filemark yet", b"its second record", b""]
