"""File history (the offset map every pydump keeps) and direct access recovery.

pyrestore -x with the map goes straight to each wanted file's record: the
count of records it reads (the medium's reads, counted by the reader, not
timed) stays a few past the directories however large the image, on a file,
on a loopback tape and across volumes, and what it writes is byte for byte
what a whole-image pass writes.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from dumptool.format import TP_BSIZE, Header, RecordType, walk_image
from dumptool.offsetmap import OffsetMap, history_dir, image_id
from tapelib import Shelf
from test_pydump import pydump, pyrestore

MiB = 1 << 20


def big_tree(root: Path, big: int) -> Path:
    """Small files first, one *big* file, then ``zlast`` (the last inode of the image)."""
    (root / "d").mkdir(parents=True)
    for i in range(20):
        (root / "d" / f"f{i:02d}").write_bytes(os.urandom(3000 + i))
    block = os.urandom(MiB)
    with open(root / "big", "wb") as f:
        for i in range(big // MiB):
            f.write(block[i % 7:] + block[:i % 7])
    (root / "zlast").write_bytes(b"the last file\n" * 500)
    return root


def reads(stdout: str) -> tuple[int, int]:
    """``(records read, of them for the front)`` from pyrestore's summary line."""
    m = re.search(r"^(\d+) records read \((\d+) for the volume header", stdout, re.M)
    assert m, stdout
    return int(m.group(1)), int(m.group(2))


def the_map(image: Path) -> OffsetMap:
    head = next(walk_image(image.read_bytes()[:TP_BSIZE * 2])).header
    found = OffsetMap.find(head)
    assert found is not None, sorted(history_dir().glob("*"))
    return found


def last_file(image: Path) -> str:
    """The name of the image's last file (dump numbers the inodes its own way)."""
    omap = the_map(image)
    last = max(omap.entries(), key=lambda e: (e.volume, e.address, e.ino))
    omap.close()
    assert last.path != b"./big"
    return os.fsdecode(last.path)


def extract(image: str, out: Path, *names: str, more: tuple[str, ...] = ()) -> tuple[str, str]:
    out.mkdir()
    done = pyrestore("-x", "-v", *more, "-f", image, *names, cwd=out)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def test_the_map_names_each_file_and_the_record_its_header_starts_in(tmp_path: Path) -> None:
    tree = big_tree(tmp_path / "src", 2 * MiB)
    image = tmp_path / "img"
    pydump("-0", "-q", "-b", "32", "-f", str(image), str(tree))
    data = image.read_bytes()
    omap = the_map(image)
    head = Header.unpack(data[:TP_BSIZE])
    assert omap.path.name == image_id(head) + ".byte.fh"
    entries = list(omap.entries())
    assert {e.path for e in entries} == {b"./big", b"./zlast"} | {b"./d/f%02d" % i for i in range(20)}
    size = 32 * TP_BSIZE
    for e in entries:
        assert e.volume == 1 and e.tape_file == 0 and e.address == e.record * size
        record = data[e.address:e.address + size]
        assert e.ino in _inodes_in(record), e
    assert omap.end["files"] == len(entries) and omap.end["extra"] == {}
    omap.close()


def _inodes_in(record: bytes) -> list[int]:
    found = []
    for at in range(0, len(record), TP_BSIZE):
        try:
            h = Header.unpack(record[at:at + TP_BSIZE])
        except Exception:
            continue
        if h.c_type == RecordType.TS_INODE:
            found.append(h.c_inumber)
    return found


def test_one_file_at_the_end_of_a_1_gib_image_reads_a_few_records(tmp_path: Path) -> None:
    tree = big_tree(tmp_path / "src", 1024 * MiB)
    image = tmp_path / "img"
    pydump("-0", "-q", "-f", str(image), str(tree))
    (tree / "big").unlink()  # room on the disk
    assert image.stat().st_size > 1024 * MiB
    omap = the_map(image)
    last = max(omap.entries(), key=lambda e: (e.address, e.ino))
    big = next(e for e in omap.entries() if e.path == b"./big")
    assert last.address > image.stat().st_size - MiB and big.address < last.address
    omap.close()
    name = os.fsdecode(last.path)
    out, err = extract(str(image), tmp_path / "dar", name, "./zlast")
    total, front = reads(out)
    assert "seek to inode" in out and err == ""
    assert total - front <= 4, out
    scan_out, _ = extract(str(image), tmp_path / "scan", name, "./zlast", more=("--no-file-history",))
    assert reads(scan_out)[0] > 1000  # the whole image, read in MiB
    for name in (name[2:], "zlast"):
        assert (tmp_path / "dar" / name).read_bytes() == (tmp_path / "scan" / name).read_bytes() \
            == (tree / name).read_bytes()
        assert (tmp_path / "dar" / name).stat().st_mtime_ns == (tmp_path / "scan" / name).stat().st_mtime_ns


def test_on_a_loopback_tape_the_seek_reads_a_few_records(tmp_path: Path) -> None:
    shelf = Shelf.create(tmp_path / "shelf", drives=1, slots=2)
    shelf.new_cartridge("DAR001", capacity=96 * MiB)
    shelf.load("DAR001", drive=0)
    nst0 = str(shelf.device_path(0, rewind=False))
    tree = big_tree(tmp_path / "src", 40 * MiB)
    pydump("-0", "-q", "-f", nst0, str(tree))   # tape file 1
    pydump("-0", "-q", "-f", nst0, str(tree))   # tape file 2: its addresses count the first
    shelf.unload(0)
    shelf.load("DAR001", drive=0)
    copy = tmp_path / "copy"
    pydump("-0", "-q", "-f", str(copy), str(tree))
    name = last_file(copy)
    out, err = extract(nst0, tmp_path / "out", name, more=("-s", "2"))
    total, front = reads(out)
    assert "seek to inode" in out and err == ""
    assert total - front <= 3, out
    assert (tmp_path / "out" / name).read_bytes() == (tree / name).read_bytes()


def test_across_volumes_it_opens_only_the_first_and_the_files_volume(tmp_path: Path) -> None:
    tree = big_tree(tmp_path / "src", 6 * MiB)
    prefix = tmp_path / "vol"
    pydump("-0", "-q", "-M", "-B", "1500", "-f", str(prefix), str(tree))
    volumes = sorted(tmp_path.glob("vol0*"))
    assert len(volumes) >= 4
    copy = tmp_path / "set"
    shutil.copyfile(volumes[0], f"{copy}001")
    shutil.copyfile(volumes[-1], f"{copy}{len(volumes):03d}")  # zlast's: the ones between are gone
    omap = the_map(volumes[0])
    last = max(omap.entries(), key=lambda e: (e.volume, e.record, e.ino))
    omap.close()
    assert last.volume == len(volumes)
    name = os.fsdecode(last.path)
    out, err = extract(str(copy), tmp_path / "out", name, more=("-M", "-y"))
    total, front = reads(out)
    assert f"of volume {len(volumes)}" in out and err == ""
    assert total - front <= 3, out
    assert (tmp_path / "out" / name).read_bytes() == (tree / name).read_bytes()


def test_a_stale_history_falls_back_to_a_scan_with_one_warning(tmp_path: Path) -> None:
    tree = big_tree(tmp_path / "src", 2 * MiB)
    image = tmp_path / "img"
    pydump("-0", "-q", "-f", str(image), str(tree))
    omap = the_map(image)
    path, entries = omap.path, list(omap.entries())
    omap.close()
    text = path.read_bytes()
    # the map says a file starts in the last file's record: the seek lands past it
    small = sorted((e for e in entries if e.path != b"./big"), key=lambda e: e.ino)
    victim, last = small[0], small[-1]
    line = b"%d\t1\t0\t%d\t" % (victim.ino, victim.record)
    assert line in text
    path.write_bytes(text.replace(line, b"%d\t1\t0\t%d\t" % (victim.ino, last.record)))
    names = [os.fsdecode(victim.path), os.fsdecode(last.path)]
    out, err = extract(str(image), tmp_path / "out", *names)
    assert err.count("\n") == 1 and "stale file history" in err
    for name in (n[2:] for n in names):
        assert (tmp_path / "out" / name).read_bytes() == (tree / name).read_bytes()
    # a map that puts the file past the image's end
    path.write_bytes(text.replace(line, b"%d\t1\t0\t%d\t" % (victim.ino, last.record + 10**6)))
    out, err = extract(str(image), tmp_path / "out3", *names)
    assert err.count("\n") == 1 and "stale file history" in err
    for name in (n[2:] for n in names):
        assert (tmp_path / "out3" / name).read_bytes() == (tree / name).read_bytes()
    # a map whose first line is not this image's: said at once, then a scan
    path.write_bytes(text.replace(b'"ntrec": 10', b'"ntrec": 32', 1))
    out, err = extract(str(image), tmp_path / "out2", "./zlast")
    assert err.count("\n") == 1 and "does not match the image (ntrec)" in err
    assert (tmp_path / "out2" / "zlast").read_bytes() == (tree / "zlast").read_bytes()


def test_across_shelf_cartridges_it_asks_only_for_the_files_volume(tmp_path: Path) -> None:
    import select
    import subprocess
    import time

    from conftest import console_script
    from test_pydump import env

    shelf = Shelf.create(tmp_path / "shelf", drives=1, slots=4)
    for barcode in ("FIRST", "SECOND", "THIRD", "FOURTH"):
        shelf.new_cartridge(barcode, capacity=MiB if barcode != "FOURTH" else 16 * MiB)
    shelf.load("FIRST", 0)
    nst0 = str(shelf.device_path(0, rewind=False))
    tree = big_tree(tmp_path / "src", 3 * MiB)
    # both dumps of the same frozen date: one image id, a map for the tape and one for the file
    pydump("-0", "-q", "--no-prompt", "--snapshot-date", "@1796000000", "-f", nst0, str(tree))
    last_barcode = shelf.status().drives[0].barcode
    order = ["FIRST", "SECOND", "THIRD", "FOURTH"]
    volumes = order.index(last_barcode) + 1
    assert volumes >= 3
    copy = tmp_path / "copy"  # the same tree dumped to a file tells which file is last
    pydump("-0", "-q", "--snapshot-date", "@1796000000", "-f", str(copy), str(tree))
    assert {p.name.split(".")[1] for p in history_dir().glob(the_map(copy).path.name.split(".")[0] + ".*")} \
        == {"byte", "block"}
    name = last_file(copy)
    shelf.unload(0)
    shelf.load("FIRST", 0)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([console_script("pyrestore"), "-x", "-v", "-f", nst0, name], cwd=out, env=env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, asked = b"", []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            seen += os.read(proc.stderr.fileno(), 4096)
            wants = re.findall(rb"Mount volume (\d+)", seen)
            if len(wants) > len(asked):
                asked.append(wants[-1])
                shelf.unload(0)
                shelf.load(order[int(wants[-1]) - 1], 0)
                proc.stdin.write(nst0.encode() + b"\n")
                proc.stdin.flush()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, (seen + stderr).decode()
    assert asked == [str(volumes).encode()]  # the cartridges between are never asked for
    total, front = reads(stdout.decode())
    assert total - front <= 3, stdout
    assert (out / name).read_bytes() == (tree / name).read_bytes()


def test_odd_names_and_the_pass_v_hook_round_trip(tmp_path: Path) -> None:
    from dumptool.dump import Dump, DumpOptions
    from dumptool.history import RecordPosition
    from dumptool.offsetmap import mark_position

    src = tmp_path / "src"
    src.mkdir()
    (src / "tab\there\\n").write_bytes(b"odd\n")
    (src / "new\nline").write_bytes(b"odder\n")

    class PassV:  # marks a position as the engine's Pass V will, before the end
        def begin(self, front): pass
        def add_dir(self, *a): pass
        def add_node(self, ino, node, position):
            mark_position(dump.out.histories, "pass-v", RecordPosition(dump.out.writer))
        def finish(self, trailer): pass
        def close(self): pass

    image = tmp_path / "img"
    dump = Dump(DumpOptions(source=str(src), output=str(image), dumpdates=str(tmp_path / "dd"), history=(PassV(),)))
    dump.run()
    omap = the_map(image)
    assert {e.path for e in omap.entries()} == {b"./tab\there\\n", b"./new\nline"}
    extra = omap.end["extra"]["pass-v"]
    assert extra["volume"] == 1 and extra["address"] == extra["record"] * 10 * TP_BSIZE
    omap.close()
    out, _ = extract(str(image), tmp_path / "out", "./new\nline")
    assert (tmp_path / "out" / "new\nline").read_bytes() == b"odder\n"


def test_a_map_that_cannot_be_written_is_one_warning_and_the_dump_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "history").write_text("not a folder")
    tree = big_tree(tmp_path / "src", MiB)
    image = tmp_path / "img"
    monkeypatch.setenv("SNAPDUMP_STATE_DIR", str(state))
    done = pydump("-0", "-f", str(image), str(tree), check=False)
    assert done.returncode == 0
    warned = [ln for ln in done.stderr.decode().splitlines() if "file history" in ln]
    assert len(warned) == 1 and "this dump has no file history" in warned[0]
    out = tmp_path / "out"
    out.mkdir()
    listed = pyrestore("-x", "-f", str(image), "./zlast", cwd=out)
    assert listed.returncode == 0 and (out / "zlast").read_bytes() == (tree / "zlast").read_bytes()


def test_a_damaged_map_is_one_warning_and_a_scan(tmp_path: Path) -> None:
    tree = big_tree(tmp_path / "src", MiB)
    image = tmp_path / "img"
    pydump("-0", "-q", "-f", str(image), str(tree))
    omap = the_map(image)
    path = omap.path
    omap.close()
    text = path.read_bytes()
    for n, damaged in enumerate((text.replace(b'"date"', b'"date', 1),           # its first line
                                 text[:len(text) // 2],                          # cut short
                                 _damage_line_of(text, b"./zlast"))):            # its line
        path.write_bytes(damaged)
        out, err = extract(str(image), tmp_path / f"out{n}", "./zlast")
        assert err.count("\n") == 1 and "reading the whole image" in err, err
        assert (tmp_path / f"out{n}" / "zlast").read_bytes() == (tree / "zlast").read_bytes()


def _damage_line_of(text: bytes, path: bytes) -> bytes:
    lines = text.split(b"\n")
    i = next(i for i, line in enumerate(lines) if line.endswith(b"\t" + path))
    fields = lines[i].split(b"\t")
    fields[1] = b"one"
    lines[i] = b"\t".join(fields)
    return b"\n".join(lines)


def test_pydump_no_file_history_keeps_no_map(tmp_path: Path) -> None:
    """``pydump --no-file-history``: no offset map for the image (so ``-x`` reads it whole)."""
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "a").write_bytes(b"a" * 5000)
    image = tmp_path / "img"
    pydump("-0", "-q", "--no-file-history", "-f", str(image), str(tree))
    head = next(walk_image(image.read_bytes()[:TP_BSIZE * 2])).header
    assert OffsetMap.find(head) is None


def test_the_next_dump_removes_the_part_files_of_dead_writers_only(tmp_path: Path) -> None:
    """A dump killed with ``kill -9`` leaves its ``<id>.fh.<pid>.part``: the next
    writer removes it (and a ``.tmp`` of one); those of writers still running stay."""
    import subprocess
    import sys

    folder = history_dir()
    folder.mkdir(parents=True, exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          check=True).stdout.strip().decode()
    stale = [folder / f"1796000000-L0-0123456789ab.fh.{dead}.part",
             folder / f"1796000001-L1-0123456789ab.fh.{dead}.tmp"]
    live = folder / f"1796000002-L0-0123456789ab.fh.{os.getpid()}.part"  # this test's process runs
    other = folder / "1796000003-L0-0123456789ab.byte.fh"
    for path in (*stale, live, other):
        path.write_bytes(b"1\t1\t0\t0\t1\t-\t0\t./a\n")
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "a").write_bytes(b"a" * 5000)
    pydump("-0", "-q", "-f", str(tmp_path / "img"), str(tree))
    assert not any(p.exists() for p in stale)
    assert live.exists() and other.exists()
    the_map(tmp_path / "img").close()
