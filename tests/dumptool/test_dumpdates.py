"""The dumpdates file and increment chains behave like Linux dump's, to level 31."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import shutil
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dumptool.dumpdates import DumpDates, DumpRecord, InodeMap, format_record, parse_record
from dumptool.errors import DumpDatesError, DumpError, NoBaseDumpError

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> int:
    """Seconds since the epoch of a UTC 'YYYY-MM-DD HH:MM:SS'."""
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


# -- the line format ---------------------------------------------------------------------

def test_line_is_name_level_asctime_and_zone_as_linux_dump_writes_it() -> None:
    rec = DumpRecord("/dev/loop1", 0, at("2026-11-25 04:11:53"))
    assert format_record(rec, UTC) == "/dev/loop1 0 Wed Nov 25 04:11:53 2026 +0000\n"


def test_single_digit_day_is_padded_with_a_space_and_zone_is_local() -> None:
    rec = DumpRecord("/dev/zzz", 0, at("2026-11-05 06:32:03"))
    assert format_record(rec, BERLIN) == "/dev/zzz 0 Thu Nov  5 07:32:03 2026 +0100\n"
    summer = DumpRecord("/dev/zzz", 3, at("2026-07-05 06:32:03"))
    assert format_record(summer, BERLIN) == "/dev/zzz 3 Sun Jul  5 08:32:03 2026 +0200\n"


def test_negative_offsets_are_honoured_and_weekday_is_ignored_on_reading() -> None:
    rec = parse_record("/dev/zzz 0 Wed Nov  5 01:02:03 2026 -0530\n")
    assert rec == DumpRecord("/dev/zzz", 0, at("2026-11-05 06:32:03"))
    assert format_record(DumpRecord("x", 1, rec.date), dt.timezone(dt.timedelta(hours=-5, minutes=-30))) == \
        "x 1 Thu Nov  5 01:02:03 2026 -0530\n"


def test_line_without_zone_is_local_time() -> None:
    assert parse_record("/dev/xxx 1 Thu Nov  5 01:02:03 2026", BERLIN).date == at("2026-11-05 00:02:03")


def test_levels_up_to_31_are_written_in_decimal_and_32_is_refused(tmp_path: Path) -> None:
    dd = DumpDates(tmp_path / "dumpdates", tz=UTC)
    dd.record("/vol/a", 0, at("2026-01-01 00:00:00"))
    dd.record("/vol/a", 31, at("2026-01-02 00:00:00"))
    assert (tmp_path / "dumpdates").read_text().splitlines()[1] == "/vol/a 31 Fri Jan  2 00:00:00 2026 +0000"
    assert dd.base_for("/vol/a", 31).level == 0
    with pytest.raises(DumpError, match="dump level 32 is out of range 0 to 31"):
        dd.record("/vol/a", 32, 0)
    with pytest.raises(DumpError, match="out of range"):
        dd.base_for("/vol/a", -1)


def test_paths_with_spaces_read_back(tmp_path: Path) -> None:
    dd = DumpDates(tmp_path / "dumpdates", tz=UTC)
    dd.record("/vol/my 2 vol", 2, at("2026-01-01 00:00:00"))
    assert dd.records() == [DumpRecord("/vol/my 2 vol", 2, at("2026-01-01 00:00:00"))]


def test_a_line_that_is_not_a_dumpdates_line_is_an_error_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "dumpdates"
    path.write_text("/dev/a 0 Wed Nov 25 04:11:53 2026 +0000\n\ngarbage here\n")
    with pytest.raises(DumpDatesError, match=r"dumpdates, line 3: not a dumpdates line"):
        DumpDates(path).records()


# -- files the real dump wrote ------------------------------------------------------------------

#: Written by hand, then `TZ=UTC dump -0 -u -D F /dev/loop0` and
#: `TZ=Europe/Berlin dump -1 -u -D F /dev/loop0` (Debian dump 0.4b47-4) turned it into REAL_AFTER.
REAL_BEFORE = (
    "/dev/zzz 0 Thu Nov  5 01:02:03 2026 -0530\n"
    "/dev/yyy 5 Sun Mar 29 01:30:00 2026 +0100\n"
    "/dev/xxx 1 Thu Nov  5 01:02:03 2026\n"
)
REAL_AFTER = (
    "/dev/zzz 0 Thu Nov  5 07:32:03 2026 +0100\n"
    "/dev/yyy 5 Sun Mar 29 01:30:00 2026 +0100\n"
    "/dev/xxx 1 Thu Nov  5 02:02:03 2026 +0100\n"
    "/dev/loop0 0 Wed Nov 25 13:44:21 2026 +0100\n"
    "/dev/loop0 1 Wed Nov 25 13:44:21 2026 +0100\n"
)


def test_rewrite_matches_real_dump_byte_for_byte(tmp_path: Path) -> None:
    """Every line is rendered again in the writer's zone; order is kept, new lines go last."""
    path = tmp_path / "dumpdates"
    path.write_text(REAL_BEFORE)
    date = at("2026-11-25 12:44:21")
    DumpDates(path, tz=UTC).record("/dev/loop0", 0, date)
    DumpDates(path, tz=BERLIN).record("/dev/loop0", 1, date)
    assert path.read_text() == REAL_AFTER


def test_file_written_by_real_dump_is_read(tmp_path: Path) -> None:
    path = tmp_path / "dumpdates"
    path.write_text(REAL_AFTER)
    dd = DumpDates(path)
    assert [(r.path, r.level) for r in dd.records()] == [
        ("/dev/zzz", 0), ("/dev/yyy", 5), ("/dev/xxx", 1), ("/dev/loop0", 0), ("/dev/loop0", 1)]
    assert dd.base_for("/dev/loop0", 2) == DumpRecord("/dev/loop0", 0, at("2026-11-25 12:44:21"))


def _can_run_real_dump() -> bool:
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("dump", "mke2fs", "losetup"))


@pytest.mark.root
@pytest.mark.skipif(not _can_run_real_dump(), reason="needs root, dump, mke2fs and losetup")
def test_dumpdates_made_by_the_real_dump_reads_back(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("hello\n")
    img = tmp_path / "img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(src), str(img), "8M"], check=True)
    dd_path = tmp_path / "dd"
    dd_path.write_text("")
    loop = subprocess.run(["losetup", "-f", "--show", str(img)], check=True, capture_output=True,
                          text=True).stdout.strip()
    try:
        for level in (0, 3):
            subprocess.run(["dump", f"-{level}", "-u", "-D", str(dd_path), "-f", "/dev/null", loop],
                           check=True, capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)
    text = dd_path.read_text()
    dd = DumpDates(dd_path)
    records = dd.records()
    assert [(r.path, r.level) for r in records] == [(loop, 0), (loop, 3)]
    assert dd.base_for(loop, 3) == records[0]
    # Our rewrite of it is the same text (in the same zone).
    dd.record(loop, 3, records[1].date)
    assert dd_path.read_text() == text


# -- increment chains ------------------------------------------------------------------------

def test_chain_0_2_3_1_4_each_base_is_the_newest_lower_level(tmp_path: Path) -> None:
    dd = DumpDates(tmp_path / "dumpdates", tz=UTC)
    expected_base = {0: None, 2: 0, 3: 2, 1: 0, 4: 1}
    for day, level in enumerate((0, 2, 3, 1, 4), start=1):
        base = dd.base_for("/vol/v", level)
        assert (base.level if base else None) == expected_base[level], f"level {level}"
        dd.record("/vol/v", level, at(f"2026-03-0{day} 12:00:00"))
    # After the level 1, a level 2 builds on it again, not on the old level 2's base.
    assert dd.base_for("/vol/v", 2).level == 1
    assert dd.base_for("/vol/v", 5).level == 4


def test_incremental_without_a_lower_level_is_refused(tmp_path: Path) -> None:
    dd = DumpDates(tmp_path / "dumpdates", tz=UTC)
    with pytest.raises(NoBaseDumpError, match="no level-0 dump of /vol/v: run a level 0 first"):
        dd.base_for("/vol/v", 1)
    dd.record("/vol/other", 0, at("2026-03-01 00:00:00"))
    dd.record("/vol/v", 3, at("2026-03-01 00:00:00"))
    with pytest.raises(NoBaseDumpError):
        dd.base_for("/vol/v", 2)  # another path's level 0 and this path's level 3 do not count
    assert dd.base_for("/vol/v", 0) is None


def test_update_replaces_the_same_path_and_level_in_place(tmp_path: Path) -> None:
    dd = DumpDates(tmp_path / "dumpdates", tz=UTC)
    dd.record("/vol/a", 0, at("2026-03-01 00:00:00"))
    dd.record("/vol/b", 0, at("2026-03-01 00:00:00"))
    dd.record("/vol/a", 1, at("2026-03-02 00:00:00"))
    dd.record("/vol/a", 0, at("2026-03-03 00:00:00"))
    assert dd.records() == [
        DumpRecord("/vol/a", 0, at("2026-03-03 00:00:00")),
        DumpRecord("/vol/b", 0, at("2026-03-01 00:00:00")),
        DumpRecord("/vol/a", 1, at("2026-03-02 00:00:00")),
    ]
    # The newer level 0 is now the base of a level 1.
    assert dd.base_for("/vol/a", 1).date == at("2026-03-03 00:00:00")


def test_missing_file_reads_empty_and_record_creates_it(tmp_path: Path) -> None:
    dd = DumpDates(tmp_path / "sub" / "dumpdates")
    assert dd.records() == []
    dd.record("/vol/a", 0, dt.datetime(2026, 3, 1, tzinfo=UTC))
    assert dd.records() == [DumpRecord("/vol/a", 0, at("2026-03-01 00:00:00"))]


def _record_many(path: str, name: str, count: int) -> None:
    dd = DumpDates(path, tz=UTC)
    for level in range(count):
        dd.record(name, level, at("2026-03-01 00:00:00") + level)


def test_concurrent_dumps_lose_no_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "dumpdates")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(path, f"/vol/{n}", 32)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    records = DumpDates(path).records()
    assert len(records) == 4 * 32
    assert {(r.path, r.level) for r in records} == {(f"/vol/{n}", lv) for n in range(4) for lv in range(32)}
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".dumpdates.")]  # no temporary files left


# -- the inode map -----------------------------------------------------------------------------

BIG = 2**63 + 12345  # a 64-bit st_ino


def test_root_is_2_and_others_count_from_3(tmp_path: Path) -> None:
    with DumpDates(tmp_path / "dumpdates").inode_map("/vol/a") as inodes:
        assert inodes.number(7, 500, root=True) == 2
        assert inodes.number(7, BIG) == 3
        assert inodes.number(7, 12) == 4
        assert inodes.number(8, 12) == 5  # another device, same st_ino
        assert inodes.number(7, BIG) == 3
        assert inodes.number(7, 500) == 2
        assert inodes.maxino == 5


def test_numbers_are_stable_across_reopen_and_new_files_get_new_ones(tmp_path: Path) -> None:
    dd = DumpDates(tmp_path / "dumpdates")
    with dd.inode_map("/vol/a") as inodes:
        inodes.number(1, 100, root=True)
        first = {ino: inodes.number(1, ino) for ino in (BIG, 5, 6, 7)}
    with dd.inode_map("/vol/a") as inodes:
        assert {ino: inodes.number(1, ino) for ino in (BIG, 5, 6, 7)} == first
        assert inodes.number(1, 8) == 7
        # A snapshot's root may have another st_ino at the next level: still 2.
        assert inodes.number(2, 100, root=True) == 2
        assert inodes.get(1, 100) is None
    with dd.inode_map("/vol/b") as other:  # each path has its own map
        assert other.number(1, BIG) == 3


def test_numbers_of_deleted_files_are_not_reused(tmp_path: Path) -> None:
    dd = DumpDates(tmp_path / "dumpdates")
    with dd.inode_map("/vol/a") as inodes:
        a, b = inodes.number(1, 10), inodes.number(1, 11)
        inodes.prune([(1, 11)])  # file 10 was deleted
    with dd.inode_map("/vol/a") as inodes:
        assert inodes.get(1, 10) is None
        assert inodes.number(1, 11) == b
        assert inodes.number(1, 10) not in (a, b)  # a new file reusing st_ino 10 gets a new number


def test_unsaved_numbers_are_dropped_when_the_dump_fails(tmp_path: Path) -> None:
    dd = DumpDates(tmp_path / "dumpdates")
    with pytest.raises(RuntimeError):
        with dd.inode_map("/vol/a") as inodes:
            inodes.number(1, 10)
            raise RuntimeError("dump failed")
    with dd.inode_map("/vol/a") as inodes:
        assert inodes.get(1, 10) is None


def test_second_dump_of_the_same_path_at_once_is_refused(tmp_path: Path) -> None:
    dd = DumpDates(tmp_path / "dumpdates")
    with dd.inode_map("/vol/a"):
        with pytest.raises(DumpDatesError, match="another dump of /vol/a is running"):
            dd.inode_map("/vol/a")
        dd.inode_map("/vol/b").close()


def test_damaged_map_is_reported(tmp_path: Path) -> None:
    dd = DumpDates(tmp_path / "dumpdates")
    with dd.inode_map("/vol/a") as inodes:
        inodes.number(1, 10)
        file = inodes.file
    file.write_bytes(file.read_bytes()[:-3])
    with pytest.raises(DumpDatesError, match="inode map of /vol/a .* is damaged"):
        dd.inode_map("/vol/a")
    other = dd.inode_map("/vol/b")
    assert isinstance(other, InodeMap)
    other.close()
