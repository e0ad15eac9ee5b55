"""fsck on volumes damaged on purpose through SQL: what it reports, what it repairs, what it leaves.

Each test breaks a closed volume's metadata the way a bug or a bad disk
would, runs fsck without and with repair, and checks that a second fsck is
clean and that the data are still there (through the Volume API; the FUSE
tests in test_fsck_fuse.py look through a real mount).
"""

from __future__ import annotations

import random
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from fuse_fixtures import snapfs

from snapfs import ROOT_INO, Volume, fsck, fsck_path
from snapfs.fsck import FSCK_NONDESTRUCT, FSCK_OK, FSCK_UNCORRECTED, LOST_FOUND_MODE
from snapfs.schema import LIVE

BS = 4096


@pytest.fixture
def voldir(tmp_path: Path) -> Path:
    Volume.create(tmp_path / "v", 256 * BS, 50, block_size=BS).close()
    return tmp_path / "v"


def sql(voldir: Path, *statements: tuple) -> None:
    """Damage the closed volume: run each ``(sql, params...)`` in one transaction."""
    db = sqlite3.connect(voldir / "snapfs.db")
    with db:
        for s, *params in statements:
            db.execute(s, params)
    db.close()


def rows(voldir: Path) -> list[str]:
    db = sqlite3.connect(voldir / "snapfs.db")
    try:
        return list(db.iterdump())
    finally:
        db.close()


def repaired_then_clean(voldir: Path, *expect: str) -> None:
    """Check-only finds every ``expect`` and changes nothing; repair fixes all; then clean."""
    before = rows(voldir)
    r = fsck_path(voldir)
    assert r.status == FSCK_UNCORRECTED, r.problems
    for e in expect:
        assert any(e in p for p in r.problems), (e, r.problems)
    assert rows(voldir) == before, "a check without repair changed the volume"
    r2 = fsck_path(voldir, repair=True)
    assert r2.status == FSCK_NONDESTRUCT, r2.uncorrected
    assert _norm(r2.problems) == _norm(r.problems), "the check must report what the repair then does"
    again = fsck_path(voldir)
    assert again.clean, again.problems


def _norm(problems: list[str]) -> list[str]:
    """Counters a repair moves itself (a copied block is one more used) may differ by their figures."""
    return [re.sub(r"\d+", "N", p) if "counter" in p else p for p in problems]


def make_tree(voldir: Path) -> dict[str, int]:
    """/d/sub/f (data), /d/g, /h (data, 2 links: /h and /d/h2); returns name -> ino."""
    with Volume.open(voldir) as v:
        d = v.mkdir(ROOT_INO, "d").ino
        sub = v.mkdir(d, "sub").ino
        f = v.create_file(sub, "f").ino
        for i in range(4):  # a block map row per block (one write would map them with one extent)
            v.write(f, i * BS, b"F" * (BS if i < 3 else 7))
        g = v.create_file(d, "g").ino
        h = v.create_file(ROOT_INO, "h").ino
        v.write(h, 0, b"H" * 100)
        v.link(h, d, "h2")
    return {"d": d, "sub": sub, "f": f, "g": g, "h": h}


def lost_found(v: Volume) -> int:
    a = v.lookup(ROOT_INO, "lost+found")
    assert stat.S_ISDIR(a.mode) and a.mode & 0o7777 == LOST_FOUND_MODE and (a.uid, a.gid) == (0, 0)
    return a.ino


def test_a_file_whose_only_entry_is_gone_is_reconnected_in_lost_found(voldir):
    t = make_tree(voldir)
    sql(voldir, ("DELETE FROM dirents WHERE ino = ?", t["f"]))
    repaired_then_clean(voldir, f"inode {t['f']} is not connected", "/lost+found is missing")
    with Volume.open(voldir) as v:
        lf = lost_found(v)
        a = v.lookup(lf, f"#{t['f']}")
        assert a.ino == t["f"] and a.nlink == 1
        assert v.read(t["f"], 0, 1 << 20) == b"F" * (3 * BS + 7)
        assert v.getattr(ROOT_INO).nlink == 4  # d, lost+found
        assert [e.name for e in v.readdir(t["sub"])] == []


def test_a_disconnected_subtree_comes_back_whole_with_its_dotdot(voldir):
    t = make_tree(voldir)
    sql(voldir, ("DELETE FROM dirents WHERE parent = ? AND name = ?", ROOT_INO, b"d"))
    repaired_then_clean(voldir, f"directory {t['d']} is not connected")
    with Volume.open(voldir) as v:
        lf = lost_found(v)
        d = v.lookup(lf, f"#{t['d']}")
        assert d.ino == t["d"] and v.lookup(t["d"], "..").ino == lf
        assert v.lookup(lf, "..").ino == ROOT_INO
        assert v.getattr(lf).nlink == 3
        assert sorted(e.name for e in v.readdir(t["d"])) == [b"g", b"h2", b"sub"]
        assert v.read(v.lookup(t["sub"], "f").ino, 0, 1 << 20) == b"F" * (3 * BS + 7)
        assert v.getattr(t["h"]).nlink == 2
        # only the top of the subtree was reconnected
        assert [e.name for e in v.readdir(lf)] == [f"#{t['d']}".encode()]


def test_a_directory_loop_cut_off_from_the_root_is_broken_and_reconnected(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        cookie = v.meta.next_cookie
    sql(voldir, ("DELETE FROM dirents WHERE parent = ? AND name = ?", ROOT_INO, b"d"),
        ("INSERT INTO dirents (parent, name, death, birth, ino, cookie) VALUES (?,?,?,1,?,?)",
         t["sub"], b"back", LIVE, t["d"], cookie),
        ("UPDATE meta SET next_cookie = ?", cookie + 1))
    repaired_then_clean(voldir, "not connected")
    with Volume.open(voldir) as v:
        lf = lost_found(v)
        seen, todo = set(), [ROOT_INO]
        while todo:  # every inode reachable again, each directory once
            for e in v.readdir(todo.pop()):
                assert e.attrs.ino not in seen or not stat.S_ISDIR(e.attrs.mode)
                seen.add(e.attrs.ino)
                if stat.S_ISDIR(e.attrs.mode):
                    todo.append(e.attrs.ino)
        assert set(t.values()) | {lf} <= seen
        assert v.read(t["f"], 0, 10) == b"F" * 10


def test_a_file_called_lost_found_moves_into_the_new_directory(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        squatter = v.create_file(ROOT_INO, "lost+found").ino
        v.write(squatter, 0, b"mine")
    sql(voldir, ("DELETE FROM dirents WHERE ino = ?", t["g"]))
    repaired_then_clean(voldir, "'lost+found' in 1 is not a directory")
    with Volume.open(voldir) as v:
        lf = lost_found(v)
        assert sorted(e.name for e in v.readdir(lf)) == sorted([f"#{t['g']}".encode(), f"#{squatter}".encode()])
        assert v.read(squatter, 0, 10) == b"mine"


def test_an_existing_lost_found_is_used_and_a_taken_name_gets_a_suffix(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        lf = v.mkdir(ROOT_INO, "lost+found", 0o700).ino
        v.create_file(lf, f"#{t['g']}")
    sql(voldir, ("DELETE FROM dirents WHERE ino = ? AND parent = ?", t["g"], t["d"]))
    repaired_then_clean(voldir, f"inode {t['g']} is not connected")
    with Volume.open(voldir) as v:
        assert v.lookup(lf, f"#{t['g']}.1").ino == t["g"]
        assert not any("lost+found is missing" in p for p in fsck(v).problems)


def test_entries_the_mount_cannot_show_are_moved_to_lost_found(voldir):
    with Volume.open(voldir) as v:
        hidden = v.mkdir(ROOT_INO, ".snapshot").ino   # the Volume API allows it; the mount hides it
        inner = v.create_file(hidden, "x").ino
        bad = v.create_file(ROOT_INO, "ok").ino
    sql(voldir, ("UPDATE dirents SET name = ? WHERE ino = ?", b"a/b", bad))
    repaired_then_clean(voldir, "'.snapshot' in 1 is hidden by the snapshot directory", "invalid name")
    with Volume.open(voldir) as v:
        lf = lost_found(v)
        assert v.lookup(v.lookup(lf, f"#{hidden}").ino, "x").ino == inner
        assert v.lookup(lf, f"#{bad}").ino == bad
        with pytest.raises(Exception):
            v.lookup(ROOT_INO, ".snapshot")


def test_a_second_name_of_a_directory_is_removed(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        cookie = v.meta.next_cookie
    sql(voldir, ("INSERT INTO dirents (parent, name, death, birth, ino, cookie) VALUES (?,?,?,1,?,?)",
                 ROOT_INO, b"alias", LIVE, t["sub"], cookie), ("UPDATE meta SET next_cookie = ?", cookie + 1))
    repaired_then_clean(voldir, f"is a second name of directory {t['sub']}")
    with Volume.open(voldir) as v:
        assert [e.name for e in v.readdir(ROOT_INO)] == [b"d", b"h"]
        assert v.lookup(t["sub"], "..").ino == t["d"]


def test_entries_naming_missing_inodes_and_bad_link_counts(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        cookie = v.meta.next_cookie
    sql(voldir, ("INSERT INTO dirents (parent, name, death, birth, ino, cookie) VALUES (?,?,?,1,?,?)",
                 t["d"], b"ghost", LIVE, 999, cookie), ("UPDATE meta SET next_cookie = ?", cookie + 1),
        ("UPDATE inodes SET nlink = 7 WHERE ino = ?", t["h"]),
        ("UPDATE inodes SET nlink = 9 WHERE ino = ?", t["d"]))
    repaired_then_clean(voldir, "names missing inode 999", f"inode {t['h']} nlink 7, should be 2",
                        f"inode {t['d']} nlink 9, should be 3")


def test_an_inode_only_a_snapshot_has_is_not_disconnected(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        s = v.snapshot_create("s").id
        v.unlink(t["sub"], "f")
        v.rmdir(t["d"], "sub")
        assert fsck(v).clean
        assert v.read(t["f"], 0, 5, snap=s) == b"FFFFF"


def test_repairs_touch_only_the_live_tree(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        s = v.snapshot_create("s").id
        v.write(t["f"], 0, b"new")  # the live f differs from the snapshot's
        E = v.meta.epoch
    sql(voldir, ("UPDATE dirents SET death = ? WHERE ino = ? AND death = ?", E, t["f"], LIVE))
    repaired_then_clean(voldir, f"inode {t['f']} is not connected")
    with Volume.open(voldir) as v:
        assert v.lookup(t["sub"], "f", snap=s).ino == t["f"]  # the snapshot still has it where it was
        assert v.read(t["f"], 0, 4, snap=s) == b"FFFF"
        assert v.read(t["f"], 0, 4) == b"newF"
        assert v.lookup(lost_found(v), f"#{t['f']}").ino == t["f"]
        with pytest.raises(Exception):
            v.lookup(ROOT_INO, "lost+found", snap=s)


def test_damage_in_a_snapshot_is_reported_never_rewritten(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        v.snapshot_create("s")
        v.unlink(t["d"], "g")  # g's entry now lives only in the snapshot
    sql(voldir, ("UPDATE inodes SET nlink = 5 WHERE ino = ? AND death < ?", t["g"], LIVE))
    before = rows(voldir)
    r = fsck_path(voldir, repair=True)
    assert r.status == FSCK_UNCORRECTED and r.uncorrected == [f"snapshot 1: inode {t['g']} nlink 5, should be 1"]
    assert rows(voldir) == before


def test_an_unlinked_file_left_by_a_crash_is_freed(voldir):
    t = make_tree(voldir)
    sql(voldir, ("DELETE FROM dirents WHERE ino = ?", t["f"]), ("UPDATE inodes SET nlink = 0 WHERE ino = ?", t["f"]))
    repaired_then_clean(voldir, f"orphan inode {t['f']}")
    with Volume.open(voldir) as v:
        assert v.space().used == 1 * BS  # h's block only
        with pytest.raises(Exception):
            v.getattr(t["f"])


def test_no_free_inode_for_lost_found_leaves_the_damage_reported(tmp_path):
    v = Volume.create(tmp_path / "v", 16 * BS, 3, block_size=BS)
    d = v.mkdir(ROOT_INO, "d").ino
    f = v.create_file(d, "f").ino
    v.close()
    sql(tmp_path / "v", ("DELETE FROM dirents WHERE ino = ?", f))
    r = fsck_path(tmp_path / "v", repair=True)
    assert r.status == FSCK_UNCORRECTED
    assert any("no free inodes" in p for p in r.uncorrected), r.uncorrected
    assert fsck_path(tmp_path / "v").status == FSCK_UNCORRECTED


def test_blocks_leaked_and_blocks_referenced_but_free(voldir):
    t = make_tree(voldir)
    sql(voldir, ("INSERT INTO free_blocks (block) SELECT block FROM blockmap WHERE ino = ? AND idx = 1", t["f"]),
        ("DELETE FROM blockmap WHERE ino = ? AND idx = 3", t["f"]))
    repaired_then_clean(voldir, "1 referenced blocks are on the free list", "1 blocks are neither referenced nor free",
                        f"inode {t['f']} counts 4 blocks, maps 3", "used-blocks counter")
    with Volume.open(voldir) as v:
        g = v.create_file(ROOT_INO, "new").ino
        v.write(g, 0, b"N" * 4 * BS)  # must not land on f's blocks
        assert v.read(t["f"], 0, 3 * BS) == b"F" * 3 * BS
        assert fsck(v).clean


def test_a_block_referenced_twice_is_copied(voldir):
    t = make_tree(voldir)
    sql(voldir, ("UPDATE blockmap SET block = (SELECT block FROM blockmap WHERE ino = ?) WHERE ino = ? AND idx = 0",
                 t["h"], t["f"]))
    repaired_then_clean(voldir, "is referenced 2 times")
    with Volume.open(voldir) as v:
        assert v.read(t["f"], 0, 3) == b"HHH" and v.read(t["h"], 0, 3) == b"HHH"
        v.write(t["f"], 0, b"xyz")
        assert v.read(t["h"], 0, 3) == b"HHH"


def test_blocks_outside_the_volume_or_above_the_high_water_mark(voldir):
    t = make_tree(voldir)
    sql(voldir, ("UPDATE blockmap SET block = 10000 WHERE ino = ? AND idx = 2", t["f"]),
        ("UPDATE blockmap SET block = 100 WHERE ino = ? AND idx = 0", t["h"]),
        ("INSERT INTO free_blocks (block) VALUES (200)", ))
    repaired_then_clean(voldir, "points to block 10000, outside the volume", "beyond the high-water mark")
    with Volume.open(voldir) as v:
        assert v.meta.high_water == 101
        assert v.read(t["f"], 2 * BS, 4) == bytes(4)  # now a hole
        assert v.getattr(t["f"]).blocks == 3 * BS // 512


def test_bad_epochs_and_counters(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        v.snapshot_create("s")
        v.unlink(ROOT_INO, "h")
        late = v.create_file(ROOT_INO, "late").ino  # seen by no snapshot
        E = v.meta.epoch
    sql(voldir, ("UPDATE inodes SET birth = ? WHERE ino = ? AND death = ?", E + 5, late, LIVE),
        ("UPDATE dirents SET death = ? WHERE parent = ? AND name = ? AND death < ?", E + 3, ROOT_INO, b"h", LIVE),
        ("UPDATE meta SET next_ino = 3, next_cookie = 2, live_inodes = 40",))
    repaired_then_clean(voldir, "born after the current epoch", "died after the current epoch", "next inode number 3",
                        "next directory cookie 2", "live inode counter 40")
    with Volume.open(voldir) as v:
        n = v.create_file(ROOT_INO, "n")
        assert n.ino > max(t.values())
        assert v.lookup(t["d"], "h2").ino == t["h"]


def test_a_snapshot_epoch_at_the_current_one_moves_the_epoch_on(voldir):
    make_tree(voldir)
    with Volume.open(voldir) as v:
        s = v.snapshot_create("s").id
    sql(voldir, ("UPDATE meta SET epoch = ?", s))
    repaired_then_clean(voldir, f"snapshot epoch {s} is not below the current epoch {s}")
    with Volume.open(voldir) as v:
        assert v.meta.epoch == s + 1


def test_dead_rows_with_impossible_epochs_are_dropped(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        v.snapshot_create("s")
    sql(voldir, ("INSERT INTO xattrs (ino, name, death, birth, value) VALUES (?, 'user.junk', 1, 2, 'x')", t["g"]))
    repaired_then_clean(voldir, "has bad epochs birth=2 death=1")


def test_maps_and_xattrs_that_belong_to_nothing(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        v.setxattr(t["g"], "user.k", b"v")
        sub = v.symlink(ROOT_INO, "l", "target").ino
    sql(voldir, ("UPDATE xattrs SET ino = 777", ),
        ("UPDATE blockmap SET ino = 778 WHERE ino = ? AND idx = 0", t["f"]),
        ("UPDATE blockmap SET ino = ? WHERE ino = ? AND idx = 1", sub, t["f"]),
        ("UPDATE inodes SET size = 10 WHERE ino = ?", t["f"]))
    repaired_then_clean(voldir, "xattrs of missing inode 777", "block map of missing inode 778",
                        f"inode {sub} maps blocks but is not a regular file",
                        f"inode {t['f']} maps block 3 past its size")
    with Volume.open(voldir) as v:
        assert v.getattr(t["f"]).size == 4 * BS  # extended over its blocks, as e2fsck does
        assert v.read(t["f"], 3 * BS, 8) == b"FFFFFFF\0"
        assert v.readlink(sub) == b"target"
        assert v.space().used == 3 * BS  # f: blocks 2, 3; h: 1


def test_overlapping_versions_are_reported_only(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        v.snapshot_create("s1")
        v.setattr(t["g"], mode=0o600)
        v.snapshot_create("s2")
    sql(voldir, ("UPDATE inodes SET birth = 1 WHERE ino = ? AND death = ?", t["g"], LIVE))
    r = fsck_path(voldir, repair=True)
    assert any("versions overlap" in p for p in r.uncorrected), r.problems


def test_a_clean_volume_checks_clean_and_repair_changes_nothing(voldir):
    make_tree(voldir)
    before = rows(voldir)
    assert fsck_path(voldir).status == FSCK_OK
    assert fsck_path(voldir, repair=True).status == FSCK_OK
    assert rows(voldir) == before


def test_a_lost_root_is_made_anew_and_keeps_its_entries(voldir):
    t = make_tree(voldir)
    with Volume.open(voldir) as v:
        v.snapshot_create("s")
        E = v.meta.epoch
    sql(voldir, ("UPDATE inodes SET death = ? WHERE ino = ? AND death = ?", E, ROOT_INO, LIVE))
    repaired_then_clean(voldir, "live tree: root directory missing")
    with Volume.open(voldir) as v:
        a = v.getattr(ROOT_INO)
        assert stat.S_ISDIR(a.mode) and a.nlink == 3
        assert [e.name for e in v.readdir(ROOT_INO)] == [b"d", b"h"]
        assert v.read(t["f"], 0, 3) == b"FFF"


def test_a_root_that_is_not_a_directory_becomes_one(voldir):
    make_tree(voldir)
    sql(voldir, ("UPDATE inodes SET mode = ? WHERE ino = ?", stat.S_IFREG | 0o644, ROOT_INO))
    repaired_then_clean(voldir, "live tree: root directory not a directory")
    with Volume.open(voldir) as v:
        assert [e.name for e in v.readdir(ROOT_INO)] == [b"d", b"h"]


def test_the_command_exits_8_on_a_volume_it_cannot_read_and_2_on_bad_usage(voldir):
    make_tree(voldir)
    with open(voldir / "snapfs.db", "r+b") as f:
        f.seek(4096)
        f.write(b"\xff" * 8192)
    for args in ((), ("-y",)):
        r = snapfs("fsck", *args, voldir, check=False)
        assert r.returncode == 8 and "malformed" in r.stderr, r.stderr
        assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
    r = snapfs("fsck", "-n", "-y", voldir, check=False)
    assert r.returncode == 2 and "not allowed with" in r.stderr


def _random_volume(voldir: Path, rng) -> None:
    v = Volume.create(voldir, 512 * BS, 200, block_size=BS)
    dirs, files = [ROOT_INO], []
    for i in range(40):
        parent = rng.choice(dirs)
        if rng.random() < 0.3:
            dirs.append(v.mkdir(parent, f"d{i}").ino)
        else:
            files.append(v.create_file(parent, f"f{i}").ino)
            v.write(files[-1], 0, bytes([i]) * rng.randrange(1, 3 * BS))
        if rng.random() < 0.1:
            v.snapshot_create(f"s{i}")
        if rng.random() < 0.1 and files:
            v.link(rng.choice(files), rng.choice(dirs), f"l{i}")
    v.close()


def _random_damage(voldir: Path, rng) -> None:
    db = sqlite3.connect(voldir / "snapfs.db")
    E = db.execute("SELECT epoch FROM meta").fetchone()[0]
    ents = db.execute("SELECT parent, name FROM dirents WHERE death = ?", (LIVE,)).fetchall()
    inos = [r[0] for r in db.execute("SELECT ino FROM inodes WHERE death = ?", (LIVE,))]
    dirs = [r[0] for r in db.execute("SELECT ino FROM inodes WHERE death = ? AND mode & ? = ?",
                                     (LIVE, 0o170000, stat.S_IFDIR))]
    maps = db.execute("SELECT ino, idx, death, block FROM blockmap").fetchall()
    damages = [
        ("UPDATE dirents SET death = ? WHERE parent = ? AND name = ? AND death = ?",
         lambda: (E, *rng.choice(ents), LIVE)),
        ("UPDATE inodes SET nlink = ? WHERE ino = ? AND death = ?", lambda: (rng.randrange(5), rng.choice(inos), LIVE)),
        ("UPDATE OR IGNORE dirents SET parent = ? WHERE parent = ? AND name = ? AND death = ?",
         lambda: (rng.choice(inos), *rng.choice(ents), LIVE)),
        ("UPDATE dirents SET ino = ? WHERE parent = ? AND name = ? AND death = ?",
         lambda: (rng.choice(inos + [999]), *rng.choice(ents), LIVE)),
        ("DELETE FROM inodes WHERE ino = ? AND death = ? AND ino != 1", lambda: (rng.choice(inos), LIVE)),
        ("INSERT OR IGNORE INTO free_blocks VALUES (?)", lambda: (rng.choice(maps)[3],)),
        ("DELETE FROM free_blocks WHERE block IN (SELECT block FROM free_blocks LIMIT ?)", lambda: (2,)),
        ("UPDATE blockmap SET block = ? WHERE ino = ? AND idx = ? AND death = ?",
         lambda: (rng.choice(maps)[3], *rng.choice(maps)[:3])),
        ("UPDATE inodes SET size = ?, nblocks = ? WHERE ino = ? AND death = ?",
         lambda: (rng.randrange(10000), rng.randrange(4), rng.choice(inos), LIVE)),
        ("UPDATE inodes SET mode = ? WHERE ino = ? AND death = ?",
         lambda: (rng.choice([0o40755, 0o100644, 0o120777]), rng.choice(inos), LIVE)),
        ("DELETE FROM blockmap WHERE ino = ? AND idx = ? AND death = ?", lambda: rng.choice(maps)[:3]),
        ("UPDATE meta SET next_ino = ?, high_water = ?", lambda: (2, 1)),
        ("INSERT OR IGNORE INTO dirents SELECT ?, ?, ?, ?, ?, next_cookie, NULL FROM meta",
         lambda: (rng.choice(dirs), b"loop", LIVE, E, rng.choice(dirs))),
        ("UPDATE OR IGNORE dirents SET name = ? WHERE parent = ? AND name = ? AND death = ?",
         lambda: (rng.choice([b"lost+found", b".snapshot", b"", b"a/b", b"..", "text"]), *rng.choice(ents), LIVE)),
        ("UPDATE inodes SET birth = ? WHERE ino = ? AND death = ?", lambda: (E + 2, rng.choice(inos), LIVE)),
        ("UPDATE OR IGNORE blockmap SET death = ? WHERE ino = ? AND death < ?",
         lambda: (E + 2, rng.choice(inos), LIVE)),
        ("UPDATE blockmap SET block = ? WHERE ino = ? AND idx = 0",
         lambda: (rng.choice([-1, 10**9, 600]), rng.choice(inos))),
    ]
    with db:
        for _ in range(rng.randrange(1, 7)):
            statement, params = rng.choice(damages)
            db.execute(statement, params())
        db.execute("UPDATE meta SET next_cookie = next_cookie + 1")
    db.close()


@pytest.mark.parametrize("seed", range(12))
def test_random_damage_is_repaired_in_one_pass(tmp_path, seed):
    """One repair leaves only what snapshots hold; a second repair finds nothing to do; every file reads."""
    rng = random.Random(seed)
    voldir = tmp_path / "v"
    _random_volume(voldir, rng)
    _random_damage(voldir, rng)
    check = fsck_path(voldir)
    first = fsck_path(voldir, repair=True)
    assert _norm(first.problems) == _norm(check.problems)
    second = fsck_path(voldir, repair=True)
    assert not second.repaired, second.repaired
    assert all(p.startswith("snapshot") or "snapshot row" in p or "versions overlap" in p for p in second.problems)
    with Volume.open(voldir) as v:
        todo = [ROOT_INO]
        while todo:
            for e in v.readdir(todo.pop()):
                if stat.S_ISDIR(e.attrs.mode):
                    todo.append(e.attrs.ino)
                elif stat.S_ISREG(e.attrs.mode):
                    assert len(v.read(e.attrs.ino, 0, 1 << 20)) == e.attrs.size
