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
