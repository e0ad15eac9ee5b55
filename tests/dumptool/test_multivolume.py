"""pydump across shelf cartridges: every layout spans and restores, and a
volume change takes only a blank cartridge (or one the operator names).

The property (:mod:`spanning`): a first cartridge of 600 KiB to 1.2 MiB, a
blocking factor of 10, 20, 32 or 64 and trees about that size or up to 3
times it; each dump spans onto a blank second cartridge and is read back by
``pyrestore -r`` and the real ``restore -r`` (through pyrmt) from the drive,
the cartridges changed when they ask for volume 2, and by ``pyrestore -C``.  ``bench/multivolume.py`` runs it long.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dumptool.format import Header, RecordType
from samples import listing, restore_both_cartridges, tape_copy
from samples import real_restore as restore
from spanning import Layout, build_tree, check_layout, copy_volumes, dump_across, layouts
from tapelib import Shelf
from test_pydump import assert_same_tree, pydump
from test_volume_prompt import READY, converse, pydump_on_a_pty

# -- the property ----------------------------------------------------------------------------------

#: Layouts whose last records met the end of the first tape: pydump stopped
#: with "ValueError: 1 blocks left over: give a pad block" before the fix.
ENDING_AT_THE_END_OF_TAPE = [
    Layout(capacity=875550, ntrec=10, files=13, data=831111, seed=1007318097),
    Layout(capacity=1121694, ntrec=20, files=6, data=1058613, seed=871637891),
    Layout(capacity=931768, ntrec=32, files=4, data=897527, seed=947187202),
    Layout(capacity=872950, ntrec=64, files=37, data=826976, seed=535433644),
]
#: Three volumes: the real restore dropped a block at the start of volume 3
#: (and with it a file) before c_firstrec counted volume 2's header.
THREE_VOLUMES = [
    Layout(capacity=879405, ntrec=10, files=28, data=2012116, seed=247094926, middle=956137),
    Layout(capacity=907938, ntrec=64, files=66, data=1659270, seed=410664858, middle=644128),
]
#: A short seeded run for CI; bench/multivolume.py draws as many as asked.
DRAWN = layouts(seed=20261206, count=10)


@pytest.mark.parametrize("layout", ENDING_AT_THE_END_OF_TAPE + THREE_VOLUMES + DRAWN, ids=str)
def test_every_layout_spans_the_cartridges_and_restores(tmp_path: Path, layout: Layout) -> None:
    check_layout(tmp_path, layout)


def test_each_volume_header_counts_the_blocks_written_before_it(tmp_path: Path) -> None:
    """``c_firstrec`` of volume n is the number of blocks on volumes 1 to
    n-1, headers included: restore skips as duplicates the blocks it read
    past it.  ``c_tapea`` repeats the number of the record the full tape
    refused, which the volume header takes no number of its own from."""
    layout = THREE_VOLUMES[0]
    tree = build_tree(tmp_path / "src", layout)
    shelf, nst0, volumes = dump_across(tmp_path, layout, tree)
    assert volumes == ["FIRST", "MIDDLE", "LAST"]
    prefix = copy_volumes(tmp_path, shelf, nst0, volumes)
    written = 0
    for n in (1, 2, 3):
        image = Path(f"{prefix}{n:03d}").read_bytes()
        head = Header.unpack(image[:1024])
        assert (head.c_type, head.c_volume) == (RecordType.TS_TAPE, n)
        assert head.c_firstrec == written, n
        assert head.c_tapea == written - max(0, n - 2), n  # the headers of volumes 2 .. n-1 took no number
        written += len(image) // 1024


# -- which cartridge takes the next volume ---------------------------------------------------------


def cartridge_bytes(shelf: Shelf, barcode: str) -> tuple[bytes, bytes]:
    """A cartridge's records file and its sidecar, byte for byte."""
    path = shelf.cartridge_path(barcode)
    return path.read_bytes(), path.with_suffix(".json").read_bytes()


def shelf_with_used_cartridges(tmp_path: Path, protected: bool = True) -> tuple[Shelf, str, Path]:
    """A shelf whose drive holds FIRST (900 KiB, from slot 1); slot 2 has
    PROT, blank but write-protected (unless not ``protected``), the next
    slot OLD with an earlier dump on it.  With a tree of 1.5 MiB to dump."""
    shelf = Shelf.create(tmp_path / "shelf", drives=1, slots=5)
    nst0 = str(shelf.device_path(0, rewind=False))
    shelf.new_cartridge("FIRST", capacity=900 * 1024)
    if protected:
        shelf.new_cartridge("PROT", capacity=10 << 20)
        shelf.set_write_protect("PROT", True)
    shelf.new_cartridge("OLD", capacity=10 << 20)
    earlier = tmp_path / "earlier"
    (earlier / "keep").mkdir(parents=True)
    (earlier / "keep" / "precious").write_bytes(os.urandom(100_000))
    shelf.load("OLD", 0)
    pydump("-0", "--quiet", "-f", nst0, str(earlier))
    shelf.unload(0)
    shelf.load("FIRST", 0)
    tree = build_tree(tmp_path / "src", Layout(capacity=900 * 1024, ntrec=10, files=20, data=1536 * 1024, seed=9))
    return shelf, nst0, tree


@pytest.fixture
def crowded(tmp_path: Path) -> tuple[Shelf, str, Path]:
    return shelf_with_used_cartridges(tmp_path)


def old_dump_is_whole(shelf: Shelf, nst0: str, tmp_path: Path) -> None:
    if shelf.status().drives[0].barcode is not None:
        shelf.unload(0)
    shelf.load("OLD", 0)
    image = tmp_path / "old.dump"
    image.write_bytes(tape_copy(nst0))
    assert "./keep/precious" in listing(restore("-t", "-f", str(image), cwd=tmp_path, tmp=tmp_path).stdout)


def test_a_full_tape_passes_over_protected_and_used_cartridges_for_a_blank_one(
        tmp_path: Path, crowded: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = crowded
    shelf.transfer(shelf.new_cartridge("BLANK", capacity=10 << 20), 4)  # FIRST's slot 1 stays free
    before = {name: cartridge_bytes(shelf, name) for name in ("PROT", "OLD")}
    result = pydump("-0", "--no-prompt", "-f", nst0, str(tree), check=False)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "DUMP: warning: passing over PROT in slot 2: it is write-protected" in err
    assert "DUMP: warning: passing over OLD in slot 3: it holds " in err
    assert "loaded BLANK from slot 4" in err
    assert shelf.status().drives[0].barcode == "BLANK"
    assert {name: cartridge_bytes(shelf, name) for name in ("PROT", "OLD")} == before
    shelf.unload(0)
    shelf.load("BLANK", 0)
    assert_same_tree(tree, restore_both_cartridges(shelf, nst0, tmp_path, first="FIRST"))
    old_dump_is_whole(shelf, nst0, tmp_path)


def test_with_no_blank_cartridge_left_the_dump_fails_and_loses_nothing(
        tmp_path: Path, crowded: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = crowded
    shelf.transfer(shelf.new_cartridge("BAD", capacity=10 << 20), 4)  # with a sidecar that is not one
    shelf.cartridge_path("BAD").with_suffix(".json").write_text("{")
    before = {name: cartridge_bytes(shelf, name) for name in ("PROT", "OLD", "BAD")}
    result = pydump("-0", "--quiet", "--no-prompt", "-f", nst0, str(tree), check=False)
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr.decode()
    assert len(err) == 4, err  # three cartridges passed over, then the one error
    assert err[2].strip().startswith("DUMP: warning: passing over BAD in slot 4: unreadable (")
    assert "no blank cartridge" in err[-1] and "--no-prompt forbids asking for volume 2" in err[-1]
    assert "--scratch" in err[-1]
    assert {name: cartridge_bytes(shelf, name) for name in ("PROT", "OLD", "BAD")} == before
    # Volume 1 is on FIRST as it was written: the dump's header, then all it took.
    shelf.load("FIRST", 0)
    first = tape_copy(nst0)
    assert len(first) > (900 - 64 - 20) * 1024
    head = Header.unpack(first[:1024])
    assert head.c_type == RecordType.TS_TAPE and head.c_volume == 1
    old_dump_is_whole(shelf, nst0, tmp_path)


def test_a_used_cartridge_is_never_overwritten_unasked(tmp_path: Path) -> None:
    shelf, nst0, tree = shelf_with_used_cartridges(tmp_path, protected=False)
    before = cartridge_bytes(shelf, "OLD")
    result = pydump("-0", "--quiet", "--no-prompt", "-f", nst0, str(tree), check=False)
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1, err
    assert err[0].startswith("DUMP: warning: passing over OLD in slot 2: it holds ") and len(err) == 2, err
    assert cartridge_bytes(shelf, "OLD") == before
    old_dump_is_whole(shelf, nst0, tmp_path)


def test_scratch_names_a_used_cartridge_that_may_be_overwritten(
        tmp_path: Path, crowded: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = crowded
    result = pydump("-0", "--no-prompt", "--scratch", "NOPE,OLD", "-f", nst0, str(tree), check=False)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "passing over PROT in slot 2: it is write-protected" in err
    assert "passing over OLD" not in err and "loaded OLD from slot 3" in err
    assert_same_tree(tree, restore_both_cartridges(shelf, nst0, tmp_path, first="FIRST"))


def test_the_operator_mounting_a_used_cartridge_is_asked_before_it_is_overwritten(
        tmp_path: Path, shelf: Shelf, nst0: str) -> None:
    """The fixture's 4 MiB TEST01 fills; the operator first mounts TEST01
    again (refused: volume 1 of this dump), then OLD, which holds an earlier
    dump: "no" leaves it be; then OLD again, and "yes" overwrites it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(6 * 1024 * 1024))
    shelf.new_cartridge("OLD", capacity=8 * 1024 * 1024)
    shelf.unload(0)
    shelf.load("OLD", 0)
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "f").write_bytes(b"earlier\n")
    pydump("-0", "--quiet", "-f", nst0, str(tmp_path / "e"))
    shelf.unload(0)
    shelf.load("TEST01", 0)
    old = cartridge_bytes(shelf, "OLD")
    pid, fd = pydump_on_a_pty("-0", "-f", nst0, str(src))

    def mount(n: int) -> str:
        if n == 1:
            shelf.load("TEST01", 0)
        elif n == 2:
            shelf.unload(0)
            shelf.load("OLD", 0)
        elif n == 3:
            assert cartridge_bytes(shelf, "OLD") == old  # "no" kept it whole
        return "yes"

    seen, code = converse(fd, pid, {READY: mount, b"overwrite it?": lambda n: "no" if n == 1 else "yes"})
    os.close(fd)
    assert code == 0, seen
    assert "TEST01 holds a volume of this dump: mount another cartridge" in seen
    assert "OLD holds " in seen and "OLD left as it is" in seen
    assert seen.count("overwrite it?") == 2 and "DUMP IS DONE" in seen
    out = restore_both_cartridges(shelf, nst0, tmp_path)
    assert_same_tree(src, out)


# -- two dumps on two drives of one shelf ------------------------------------------------------------


@pytest.mark.parametrize("meanwhile", ["loaded", "written"])
def test_a_cartridge_taken_between_the_look_and_the_load_is_passed_for_the_next_blank(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, meanwhile: str) -> None:
    # the other dump (drive 1) takes C02 from its slot right after this one looked at the slots
    from dumptool.dump import DumpOptions
    from dumptool.volumes import VolumeChanger
    from tapelib import open_device

    shelf = Shelf.create(tmp_path / "lib", drives=2, slots=6)
    for name in ("C01", "C02", "C03"):
        shelf.new_cartridge(name, capacity=1 << 20)
    shelf.load("C01", 0)
    nst0 = str(shelf.device_path(0, rewind=False))
    load = Shelf.load
    other_moved = []

    def taken_first(self: Shelf, what: str | int, drive: int = 0) -> str:
        if not other_moved:  # the changer's first load, after its look at the slots: the other dump moves now
            other_moved.append(load(self, "C02", 1))
            if meanwhile == "written":  # ... and fills it, and puts it back
                with open_device(str(self.device_path(1, rewind=False)), writable=True) as tape:
                    tape.write(b"the other dump's volume")
                self.unload(1)
        return load(self, what, drive)

    said: list[str] = []
    changer = VolumeChanger(DumpOptions(source=str(tmp_path), output=nst0, never_ask=True),
                            say=said.append, warn=said.append, notify=said.append)
    changer.is_tape = True
    monkeypatch.setattr(Shelf, "load", taken_first)
    sink = changer.mount(2, nst0)
    sink.close()
    monkeypatch.undo()
    assert shelf.status().drives[0].barcode == "C03", said
    assert said[-1] == "Changing volumes: loaded C03 from slot 3 into drive 0", said
    assert any(line.startswith("Changing volumes: C02 ") for line in said), said
    if meanwhile == "written":  # put back as the other dump left it
        assert "C02" in shelf.status().slots
        assert shelf.cartridge_path("C02").stat().st_size > 0
