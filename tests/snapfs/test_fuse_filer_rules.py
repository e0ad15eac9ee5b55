"""The dump engine's filer rules on a snapfs mount (issue 13): files under client I/O
restriction are skipped, reported, and taken by the next dump of the path once lifted
(changed or not); an incremental is refused, naming why and saying "run a level 0",
after a change of the volume's access type, a move, or a generation bump since its base."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, mounted, snapfs  # noqa: F401 (fixtures)

from dumptool.baselines import Baseline, Identity, check_base
from dumptool.errors import DumpError
from dumptool.format import RecordType, walk_chunks
from snapfs import client

pytestmark = pytest.mark.fuse

BIN = Path(sys.executable).parent
PYDUMP, PYRESTORE = str(BIN / "pydump"), str(BIN / "pyrestore")


def run(*cmd, cwd: Path | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*map(str, cmd)], capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL,
                          timeout=120, **kw)


def on_image(image: Path) -> set[str]:
    """The names whose inode the image carries (restore -t lists every name of its directories)."""
    dumped = {h.header.c_inumber for h in walk_chunks(iter([image.read_bytes()]), on_damage=lambda d: None)
              if h.header.c_type == RecordType.TS_INODE}
    names = set()
    for line in run(PYRESTORE, "-t", "-f", image).stdout.splitlines():
        ino, _, name = line.strip().partition("\t")
        if ino.isdigit() and int(ino) in dumped:
            names.add(os.path.basename(name))
    return names


def dump(m: Path, level: int, image: Path, dumpdates: Path, *more: str) -> subprocess.CompletedProcess:
    return run(PYDUMP, f"-{level}", "-u", "-D", dumpdates, "-f", image, *more, m)


def test_a_restricted_file_is_skipped_reported_and_taken_by_the_next_dump_unchanged(mounted: Mounted, tmp_path):
    m = mounted.mnt
    (m / "d").mkdir()
    (m / "d" / "held.bin").write_bytes(b"restored by someone\n" * 500)
    (m / "d" / "free.txt").write_text("free\n")
    (m / "top.txt").write_text("top\n")
    dd = tmp_path / "dumpdates"
    time.sleep(1.1)  # the files are older than the level 0's date (dump takes the same second again)
    with client.open_volume(m) as c:
        c.restrict("d/held.bin", "restore-9")
    r = dump(m, 0, tmp_path / "l0", dd)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "held.bin" in ln]
    assert lines == [f"  DUMP: warning: {m}/d/held.bin: under client I/O restriction (owner restore-9): "
                     "not dumped; the next dump of this path takes it"], r.stderr
    listed = run(PYRESTORE, "-t", "-f", tmp_path / "l0")
    assert "free.txt" in listed.stdout and "held.bin" not in listed.stdout
    assert {"free.txt", "top.txt"} <= on_image(tmp_path / "l0")
    time.sleep(1.1)  # the level 1's snapshot is in a later second than the level 0's
    with client.open_volume(m) as c:
        c.unrestrict("d/held.bin", "restore-9")
    r = dump(m, 1, tmp_path / "l1", dd)
    assert r.returncode == 0, r.stderr
    files = on_image(tmp_path / "l1") - {".", "d"}
    assert files == {"held.bin"}  # the others, unchanged, are not taken
    out = tmp_path / "out"
    out.mkdir()
    for image in ("l0", "l1"):
        r = run(PYRESTORE, "-r", "-y", "-f", tmp_path / image, cwd=out)
        assert r.returncode == 0, r.stderr
    assert (out / "d" / "held.bin").read_bytes() == b"restored by someone\n" * 500
    assert (out / "d" / "free.txt").read_text() == "free\n" and (out / "top.txt").read_text() == "top\n"
    # a second level 1 (same base) takes it again: the level 0 still lacks it
    time.sleep(1.1)
    r = dump(m, 1, tmp_path / "l1b", dd)
    assert r.returncode == 0, r.stderr
    assert "held.bin" in on_image(tmp_path / "l1b")
    # a level 2 on the level 1 that had it: not taken (unchanged since)
    time.sleep(1.1)
    r = dump(m, 2, tmp_path / "l2", dd)
    assert r.returncode == 0, r.stderr
    assert "held.bin" not in on_image(tmp_path / "l2")


def test_a_file_restricted_after_the_level_0_keeps_its_earlier_copy_through_an_incremental(mounted: Mounted,
                                                                                          tmp_path):
    m = mounted.mnt
    (m / "f.txt").write_text("version 1\n")
    dd = tmp_path / "dumpdates"
    assert dump(m, 0, tmp_path / "l0", dd).returncode == 0
    time.sleep(1.1)
    (m / "f.txt").write_text("version 2, half restored\n")
    (m / "g.txt").write_text("new\n")
    with client.open_volume(m) as c:
        c.restrict("f.txt", "restore-1")
    r = dump(m, 1, tmp_path / "l1", dd)
    assert r.returncode == 0, r.stderr
    assert "f.txt: under client I/O restriction" in r.stderr
    out = tmp_path / "out"
    out.mkdir()
    for image in ("l0", "l1"):
        r = run(PYRESTORE, "-r", "-y", "-f", tmp_path / image, cwd=out)
        assert r.returncode == 0, r.stderr
    assert (out / "f.txt").read_text() == "version 1\n"  # not lost: the level 0's copy
    assert (out / "g.txt").read_text() == "new\n"
    real = tmp_path / "real"  # the real Linux restore reads the chain the same way
    real.mkdir()
    for image in ("l0", "l1"):
        r = run("/sbin/restore", "-r", "-y", "-f", tmp_path / image, cwd=real, env=dict(os.environ, TMPDIR=str(tmp_path)))
        assert r.returncode == 0, r.stderr
    assert (real / "f.txt").read_text() == "version 1\n" and (real / "g.txt").read_text() == "new\n"
    time.sleep(1.1)
    with client.open_volume(m) as c:
        c.unrestrict("f.txt", "restore-1")
    r = dump(m, 2, tmp_path / "l2", dd)
    assert r.returncode == 0, r.stderr
    assert "f.txt" in on_image(tmp_path / "l2")


@pytest.mark.parametrize("change, why", [
    (lambda c: c.volume_modify(type="ro"), "the volume's access type changed (rw, now ro)"),
    (lambda c: c.volume_move("aggr7"), "the volume was moved (aggr0, now aggr7)"),
    (lambda c: (c.volume_modify(type="ro"), c.volume_modify(type="rw")), "the volume's generation changed (1, now 3)"),
], ids=["access-type", "move", "generation"])
def test_an_incremental_after_a_volume_change_is_refused_in_one_line(mounted: Mounted, tmp_path, change, why):
    m = mounted.mnt
    (m / "f.txt").write_text("data\n")
    dd = tmp_path / "dumpdates"
    assert dump(m, 0, tmp_path / "l0", dd).returncode == 0
    with client.open_volume(m) as c:
        change(c)
    r = dump(m, 1, tmp_path / "l1", dd)
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == f"  DUMP: cannot dump {m} at level 1: {why} since its level 0 base: " \
                                        "run a level 0", r.stderr
    assert "Traceback" not in r.stderr
    with client.open_volume(m) as c:
        assert [s.name for s in c.snapshot_list()] == []  # the refused dump's snapshot is gone
    assert dd.read_text().count("\n") == 1  # nothing recorded
    # a level 0 makes a new base the next incremental is checked against
    assert dump(m, 0, tmp_path / "l0b", dd).returncode == 0
    time.sleep(1.1)
    r = dump(m, 1, tmp_path / "l1", dd)
    assert r.returncode == 0, r.stderr


def test_the_base_check_on_identity_and_the_cab_move(tmp_path):
    base = Baseline("/v", 0, 100, Identity("u1", 4, "rw", "aggr0"))

    def refusal(now: Identity, **kw) -> str:
        with pytest.raises(DumpError) as e:
            check_base("/v", 1, base, 0, now, **kw)
        return e.value.message

    assert "identity changed (uuid u1, now u2)" in refusal(Identity("u2", 4, "rw", "aggr0"))
    with pytest.raises(DumpError, match="no volume identity is recorded.*run a level 0$"):
        check_base("/v", 1, None, 0, Identity("u1", 4, "rw", "aggr0"))
    kept = Identity("u1", 4, "rw", "aggr1")  # moved, its identity kept (snapfs volume move --keep-identity)
    assert "was moved" in refusal(kept)
    check_base("/v", 1, base, 0, kept, cab=True)  # CAB: a move keeping the identity keeps the baseline
    # a move that did not keep it (the generation bumped): a new baseline, CAB or not
    assert "generation changed (4, now 5)" in refusal(Identity("u1", 5, "rw", "aggr1"), cab=True)
    assert "was moved" in refusal(Identity("u1", 5, "rw", "aggr1"))
    check_base("/v", 1, base, 0, Identity("u1", 4, "rw", "aggr0"))
