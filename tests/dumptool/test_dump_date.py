"""The dump date of a read-only tree frozen earlier: ``--snapshot-date`` (pydump's own flag).

A snapfs ``.snapshot/NAME/`` needs no flag (see tests/snapfs/test_fuse_dump_snapshots.py);
any other frozen copy names its freeze time, which becomes the image's c_date and the
dumpdates date, so the next incremental takes what changed since the freeze."""

from __future__ import annotations

from pathlib import Path

from dumptool.dumpdates import DumpDates
from dumptool.format import ByteOrder, Header
from test_pydump import pydump

FROZEN = 1_790_000_000


def test_snapshot_date_is_the_dump_date_in_the_image_and_dumpdates(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    dates = tmp_path / "dumpdates"
    done = pydump("-0", "-u", "--snapshot-date", f"@{FROZEN}", "-D", str(dates), "-f", str(tmp_path / "l0"),
                  str(src))
    assert Header.unpack((tmp_path / "l0").read_bytes()[:1024], ByteOrder.LITTLE).c_date == FROZEN
    assert [(r.level, r.date) for r in DumpDates(dates).records()] == [(0, FROZEN)]
    assert b"froze" in done.stderr
    pydump("-1", "-u", "--quiet", "-D", str(dates), "-f", str(tmp_path / "l1"), str(src))
    l1 = Header.unpack((tmp_path / "l1").read_bytes()[:1024], ByteOrder.LITTLE)
    assert l1.c_ddate == FROZEN and l1.c_date > FROZEN
    bad = pydump("-0", "--snapshot-date", "someday", "-f", str(tmp_path / "x"), str(src), check=False)
    assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1


def test_a_date_the_next_incremental_would_miss_changes_by_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    dates = tmp_path / "dumpdates"
    # a freeze time later than now (2036: a header holds it): recorded, the next level 1 took nothing changed
    # before it
    future = pydump("-0", "-u", "--snapshot-date", "@2100000000", "-D", str(dates), "-f", str(tmp_path / "l0"),
                    str(src), check=False)
    assert future.returncode == 1 and b"a date in the future" in future.stderr, future.stderr
    assert len(future.stderr.splitlines()) == 1 and not dates.exists()
    # an incremental of a copy older than its base: a warning alone, and refused with -u
    pydump("-0", "-u", "--quiet", "--snapshot-date", f"@{FROZEN}", "-D", str(dates), "-f", str(tmp_path / "l0"),
           str(src))
    older = ["--snapshot-date", f"@{FROZEN - 3600}", "-D", str(dates), "-f", str(tmp_path / "l1"), str(src)]
    warned = pydump("-1", "--quiet", *older)
    assert b"older than the level 0 dump this one is based on" in warned.stderr
    refused = pydump("-1", "-u", "--quiet", *older, check=False)
    assert refused.returncode == 1 and b"cannot be recorded (-u)" in refused.stderr, refused.stderr
    assert [(r.level, r.date) for r in DumpDates(dates).records()] == [(0, FROZEN)]


def test_a_dumpdates_file_that_is_a_symbolic_link_is_written_through_it(tmp_path: Path) -> None:
    # as dump writes /etc/dumpdates: a shared file behind a link stays shared (it was replaced
    # by a file of its own, the shared one never updated again)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    shared = tmp_path / "etc" / "dumpdates"
    shared.parent.mkdir()
    shared.write_text("")
    link = tmp_path / "dumpdates"
    link.symlink_to(shared)
    pydump("-0", "-u", "--quiet", "--snapshot-date", f"@{FROZEN}", "-D", str(link), "-f", str(tmp_path / "l0"),
           str(src))
    assert link.is_symlink()
    assert [(r.level, r.date) for r in DumpDates(shared).records()] == [(0, FROZEN)]


def test_a_dumpdates_name_that_is_not_a_regular_file_is_refused_before_the_dump(tmp_path: Path) -> None:
    # a device was renamed over by the new dumpdates (-D /dev/null as root replaced /dev/null), a
    # FIFO waited for a writer, and /dev/zero was read until memory ran out
    import os
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    names = [fifo]
    if os.geteuid() == 0:
        os.mknod(tmp_path / "null", 0o666 | 0o020000, os.makedev(1, 3))
        names.append(tmp_path / "null")
    for name in names:
        for level in ("-0", "-1"):
            done = pydump(level, "-u", "--quiet", "-D", str(name), "-f", str(tmp_path / "l0"), str(src), check=False)
            assert done.returncode == 1 and b"is not a regular file" in done.stderr, done.stderr
            assert not (tmp_path / "l0").exists()
    assert not fifo.is_file() and fifo.exists()
