"""The filer's objects on a real mount (issue 12, part A): qtrees, junctions, client I/O
restrictions and the volume's identity and type.  Each is made with the snapfs command,
seen with ordinary tools, kept unchanged in a snapshot, kept across a remount and fsck,
read by snapfs.reader, and its bad input refused with one line."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, force_unmount, make_mount, mounted, snapfs  # noqa: F401 (a fixture)

from snapfs import SnapfsError, Volume, client, fsck_path
from snapfs.qtrees import MAX_QTREES
from snapfs.reader import open_snapshot

pytestmark = pytest.mark.fuse


def _run(*cmd: str | os.PathLike) -> subprocess.CompletedProcess:
    return subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=30)


def _xattrs(path: Path, *flags: str) -> str:
    r = _run("getfattr", *flags, "-d", "-m", "-", "--absolute-names", path)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _one_line_error(r: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("snapfs: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def _remount(m) -> None:
    snapfs("unmount", m.mnt)
    assert fsck_path(m.voldir).clean
    snapfs("mount", m.voldir, m.mnt, "-o", "allow_other")


def test_qtrees_made_seen_kept_in_a_snapshot_and_refused_when_bad(mounted):
    mnt = mounted.mnt
    snapfs("volume", "modify", mnt, "--security-style", "mixed")
    assert "created qtree q1 (id 1, ntfs, oplocks enable)" in snapfs("qtree", "create", mnt, "q1",
                                                                       "--security-style", "ntfs").stdout
    assert "(id 2, mixed," in snapfs("qtree", "create", mnt, "q2").stdout  # the volume's style
    lines = snapfs("qtree", "list", mnt).stdout.splitlines()
    assert lines[1].split() == ["1", "q1", "ntfs", "enable"] and lines[2].split() == ["2", "q2", "mixed", "enable"]
    (mnt / "q1" / "d").mkdir()
    (mnt / "q1" / "d" / "f").write_text("in q1")
    (mnt / "top").write_text("in qtree 0")
    # ordinary tools: a directory, with its record; every file's qtree id
    assert _run("stat", "-c", "%F", mnt / "q1").stdout.strip() == "directory"
    assert 'trusted.snapfs.qtree="id=1;security-style=ntfs;oplocks=enable"' in _xattrs(mnt / "q1")
    assert os.getxattr(mnt / "q1" / "d" / "f", "trusted.snapfs.qtree_id") == b"1"
    assert os.getxattr(mnt / "top", "trusted.snapfs.qtree_id") == b"0"
    assert os.getxattr(mnt, "trusted.snapfs.qtree_id") == b"0"
    assert "qtree_id" not in _xattrs(mnt / "q1" / "d" / "f")  # virtual: never listed, never copied
    # directories stay in their qtree (EXDEV: mv copies instead); files move freely
    (mnt / "q1" / "d2").mkdir()
    with pytest.raises(OSError) as e:
        os.rename(mnt / "q1" / "d2", mnt / "q2" / "d2")
    assert e.value.errno == errno.EXDEV
    with pytest.raises(OSError) as e:
        os.rename(mnt / "q1" / "d2", mnt / "d2")
    assert e.value.errno == errno.EXDEV
    os.rename(mnt / "q1" / "d2", mnt / "q1" / "d" / "d2")  # within the qtree
    os.rmdir(mnt / "q1" / "d" / "d2")
    os.rename(mnt / "top", mnt / "q2" / "top")
    assert os.getxattr(mnt / "q2" / "top", "trusted.snapfs.qtree_id") == b"2"
    os.rename(mnt / "q2" / "top", mnt / "top")
    # a snapshot keeps them as they were
    snapfs("snapshot", "create", mnt, "s1")
    snapfs("qtree", "modify", mnt, "q1", "--oplocks", "disable", "--security-style", "unix")
    assert 'oplocks=disable' in _xattrs(mnt / "q1")
    assert 'trusted.snapfs.qtree="id=1;security-style=ntfs;oplocks=enable"' in _xattrs(mounted.snap("s1") / "q1")
    assert os.getxattr(mounted.snap("s1") / "q1" / "d" / "f", "trusted.snapfs.qtree_id") == b"1"
    # bad input: one line each
    _one_line_error(snapfs("qtree", "create", mnt, "q3", "--security-style", "weird", check=False), 2,
                    "invalid choice: 'weird'")
    _one_line_error(snapfs("qtree", "create", mnt, "a,b", check=False), 1, "may not contain ','")
    _one_line_error(snapfs("qtree", "create", mnt, "x" * 65, check=False), 1, "1 to 64 characters")
    _one_line_error(snapfs("qtree", "create", mnt, "q1", check=False), 1, "already exists")
    _one_line_error(snapfs("qtree", "delete", mnt, "q1", check=False), 1, "not empty", "--force")
    _one_line_error(snapfs("qtree", "show", mnt, "nope", check=False), 1, "no qtree named 'nope'")
    _one_line_error(snapfs("volume", "modify", mnt, "--security-style", "dos", check=False), 2, "invalid choice")
    # the record and the qtree's directory change only through snapfs
    for cmd in (["setfattr", "-n", "trusted.snapfs.qtree", "-v", "id=9", mnt / "q2"],
                ["setfattr", "-x", "trusted.snapfs.qtree", mnt / "q2"],
                ["rmdir", mnt / "q2"], ["mv", mnt / "q2", mnt / "q9"]):
        r = _run(*cmd)
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, (cmd, r.stderr)
    snapfs("qtree", "delete", mnt, "q2")
    snapfs("qtree", "delete", mnt, "q1", "--force")
    assert sorted(os.listdir(mnt)) == ["top"]
    assert (mounted.snap("s1") / "q1" / "d" / "f").read_text() == "in q1"
    assert snapfs("qtree", "create", mnt, "q3").stdout.startswith("created qtree q3 (id 3,")  # ids never reused
    _remount(mounted)
    lines = snapfs("qtree", "list", mnt).stdout.splitlines()
    assert [ln.split() for ln in lines[1:]] == [["3", "q3", "mixed", "enable"]]
    snapfs("snapshot", "hold", mnt, "s1", "test")
    with open_snapshot(mounted.voldir, "s1") as snap:
        assert [(q.id, q.name, q.security_style) for q in snap.qtrees()] == [(1, "q1", "ntfs"), (2, "q2", "mixed")]
        f = int(os.getxattr(mounted.snap("s1") / "q1" / "d" / "f", "user.snapfs.ino"))
        assert snap.qtree_of(f).name == "q1"
        ids = snap.qtree_ids()
        assert ids[f] == 1 and ids[int(os.getxattr(mounted.snap("s1") / "top", "user.snapfs.ino"))] == 0
    snapfs("snapshot", "release", mnt, "s1", "test")


def test_at_most_4995_qtrees(tmp_path):
    voldir = tmp_path / "v"
    with Volume.create(voldir, 1 << 24, MAX_QTREES + 10, block_size=4096) as v:
        v.set_batch(True)  # made through the Volume API: 4,995 round trips would take seconds
        for i in range(MAX_QTREES - 1):
            v.qtree_create(f"q{i}")
    m = Mounted(voldir, tmp_path / "mnt")
    m.mnt.mkdir()
    snapfs("mount", voldir, m.mnt)
    try:
        with client.open_volume(m.mnt) as c:
            c.qtree_create("the-last")
        _one_line_error(snapfs("qtree", "create", m.mnt, "one-more", check=False), 1,
                        f"already has {MAX_QTREES} qtrees")
        assert len(os.listdir(m.mnt)) == MAX_QTREES
    finally:
        force_unmount(m.mnt)
    assert fsck_path(m.voldir).clean


def test_junction_is_a_symlink_to_the_other_volume_and_kept_in_a_snapshot(mounted, tmp_path):
    other = make_mount(tmp_path, name="other")
    try:
        mnt = mounted.mnt
        (mnt / "dir").mkdir()
        out = snapfs("junction", "create", mnt, "dir/vol2", "--volume", other.mnt).stdout
        assert f"junction dir/vol2 -> {other.mnt}" in out
        assert os.readlink(mnt / "dir" / "vol2") == str(other.mnt)
        assert _run("ls", "-l", mnt / "dir").stdout.splitlines()[1].startswith("lrwxrwxrwx")
        uuid = client.open_volume(other.mnt).volume_identity().uuid
        assert f'trusted.snapfs.junction="uuid={uuid};name=testvol;path={other.voldir}"' in _xattrs(
            mnt / "dir" / "vol2", "-h")
        (other.mnt / "hello").write_text("through the junction")
        assert (mnt / "dir" / "vol2" / "hello").read_text() == "through the junction"
        lines = snapfs("junction", "list", mnt).stdout.splitlines()
        assert lines[1].split() == ["dir/vol2", "testvol", uuid, str(other.mnt)]
        # to a volume that is not mounted: its folder
        snapfs("unmount", other.mnt)
        snapfs("junction", "create", mnt, "cold", "--volume", other.voldir)
        assert os.readlink(mnt / "cold") == str(other.voldir)
        snapfs("snapshot", "create", mnt, "s1")
        snapfs("junction", "delete", mnt, "dir/vol2")
        assert not os.path.lexists(mnt / "dir" / "vol2")
        assert os.readlink(mounted.snap("s1") / "dir" / "vol2") == str(other.mnt)
        assert "uuid=" + uuid in _xattrs(mounted.snap("s1") / "dir" / "vol2", "-h")
        # bad input
        _one_line_error(snapfs("junction", "create", mnt, "x", "--volume", tmp_path, check=False), 1,
                        "unknown volume for a junction")
        _one_line_error(snapfs("junction", "create", mnt, "x", "--volume", mnt, check=False), 1, "itself")
        _one_line_error(snapfs("junction", "delete", mnt, "dir", check=False), 1, "not a junction")
        r = _run("setfattr", "-h", "-n", "trusted.snapfs.junction", "-v", "x", mnt / "cold")
        assert "Operation not permitted" in r.stderr
        _remount(mounted)
        assert [ln.split()[0] for ln in snapfs("junction", "list", mnt).stdout.splitlines()[1:]] == ["cold"]
        snapfs("snapshot", "hold", mnt, "s1", "t")
        with open_snapshot(mnt, "s1") as snap:
            ino = int(os.getxattr(mounted.snap("s1") / "dir" / "vol2", "trusted.snapfs.ino",
                                  follow_symlinks=False))
            assert snap.junction(ino) == {"uuid": uuid, "name": "testvol", "path": str(other.voldir)}
            assert snap.readlink(ino) == os.fsencode(other.mnt)
        snapfs("snapshot", "release", mnt, "s1", "t")
    finally:
        force_unmount(other.mnt)


def test_restricted_file_opens_only_for_its_owner_across_a_remount(mounted):
    mnt = mounted.mnt
    (mnt / "d").mkdir()
    (mnt / "d" / "f").write_text("restored data")
    (mnt / "g").write_text("free")
    assert snapfs("restrict", mnt, "d/f", "--owner", "restore-7").stdout.strip() == \
        "restricted d/f to owner restore-7"
    r = _run("cat", mnt / "d" / "f")
    assert r.returncode == 1 and "Device or resource busy" in r.stderr
    with pytest.raises(OSError) as e:
        os.truncate(mnt / "d" / "f", 0)
    assert e.value.errno == errno.EBUSY
    assert (mnt / "g").read_text() == "free"
    # the owner: through the command (its child), and through snapfs.client in this process
    r = snapfs("restrict", "exec", mnt, "--owner", "restore-7", "--", "cat", mnt / "d" / "f")
    assert r.stdout == "restored data"
    r = snapfs("restrict", "exec", mnt, "--owner", "someone-else", "--", "cat", mnt / "d" / "f", check=False)
    assert r.returncode == 1 and "Device or resource busy" in r.stderr  # cat's own error and status
    with client.open_volume(mnt) as c:
        c.act_as("restore-7")
        assert (mnt / "d" / "f").read_text() == "restored data"
    with pytest.raises(OSError):  # the connection closed: no longer the owner
        (mnt / "d" / "f").read_text()
    assert snapfs("restrict", "list", mnt).stdout.splitlines()[1].split() == ["restore-7", "d/f"]
    _one_line_error(snapfs("restrict", mnt, "d/f", "--owner", "other", check=False), 1,
                    "already restricted to owner 'restore-7'")
    _one_line_error(snapfs("unrestrict", mnt, "d/f", "--owner", "other", check=False), 1, "not 'other'")
    _one_line_error(snapfs("restrict", mnt, "nope", "--owner", "x", check=False), 1,
                    "'nope': no such file or directory (paths are from the volume's root)")
    _one_line_error(snapfs("restrict", mnt, "d/f", check=False), 2, "--owner")
    _remount(mounted)
    assert _run("cat", mnt / "d" / "f").returncode == 1
    snapfs("unrestrict", mnt, "d/f", "--owner", "restore-7")
    assert (mnt / "d" / "f").read_text() == "restored data"
    assert snapfs("restrict", "list", mnt).stdout.splitlines()[1:] == []
    snapfs("restrict", mnt, "g", "--owner", "restore-8")
    (mnt / "g").unlink()  # the restriction goes with its file
    assert snapfs("restrict", "list", mnt).stdout.splitlines()[1:] == []


def test_volume_identity_type_and_generation(mounted):
    mnt = mounted.mnt
    (mnt / "f").write_text("x")

    def show() -> dict[str, str]:
        return {k.strip(): v.strip() for k, _, v in
                (ln.partition(":") for ln in snapfs("volume", "show", mnt).stdout.splitlines())}

    s = show()
    assert s["type"] == "rw" and s["generation"] == "1" and len(s["uuid"]) == 36
    snapfs("volume", "modify", mnt, "--type", "ro")
    assert show()["type"] == "ro" and show()["generation"] == "2"
    for cmd in (["touch", mnt / "new"], ["mkdir", mnt / "d"], ["rm", mnt / "f"], ["chmod", "600", mnt / "f"],
                ["setfattr", "-n", "user.a", "-v", "1", mnt / "f"], ["truncate", "-s", "0", mnt / "f"]):
        r = _run(*cmd)
        assert r.returncode != 0 and "Read-only file system" in r.stderr, (cmd, r.stderr)
    with pytest.raises(OSError) as e:
        with open(mnt / "f", "a") as fh:
            fh.write("y")
    assert e.value.errno == errno.EROFS
    assert (mnt / "f").read_text() == "x"
    snapfs("volume", "modify", mnt, "--type", "ro")  # no change: the same generation
    assert show()["generation"] == "2"
    _one_line_error(snapfs("qtree", "create", mnt, "q", check=False), 1, "read-only (type ro")
    snapfs("snapshot", "create", mnt, "mirror.1")  # a mirror destination still takes snapshots
    _remount(mounted)
    assert _run("touch", mnt / "new").returncode != 0
    aggr2 = mounted.voldir.parent / "aggr2"
    aggr2.mkdir()
    snapfs("volume", "move", mnt, "--to", aggr2 / "vol")  # a folder in another folder: the aggregate
    mounted.voldir = aggr2 / "vol"
    s2 = show()
    assert (s2["generation"], s2["aggregate"], s2["uuid"], s2["type"]) == ("3", str(aggr2), s["uuid"], "ro")
    snapfs("volume", "modify", mnt, "--type", "rw")
    (mnt / "new").write_text("writable again")
    assert show()["generation"] == "4"
    _one_line_error(snapfs("volume", "modify", mnt, check=False), 2, "--type")
    _one_line_error(snapfs("volume", "modify", mnt, "--type", "wo", check=False), 2, "invalid choice")
    snapfs("snapshot", "hold", mnt, "mirror.1", "t")
    with open_snapshot(mnt, "mirror.1") as snap:  # taken at generation 2, as ro
        assert (snap.identity.uuid, snap.identity.generation, snap.identity.type) == (s["uuid"], 2, "ro")
        v = snap.volume_identity
        assert (v.uuid, v.generation, v.type) == (s["uuid"], 4, "rw")
    snapfs("snapshot", "release", mnt, "mirror.1", "t")


def test_fsck_checks_the_filer_records(tmp_path):
    voldir = tmp_path / "v"
    with Volume.create(voldir, 1 << 24, 100, block_size=4096) as v:
        q = v.qtree_create("q1")
        v.qtree_create("q2")
        v.create_file(q.ino, "f")
        v.restrict("q1/f", "r")
        v.unlink(q.ino, "f")  # the restriction goes with its file
        assert v.restriction_list() == []
        v.create_file(q.ino, "g")
        v.restrict("q1/g", "r")
        with v.tables.txn():  # damage: a second qtree with id 1, a junction record on a file
            v.db.execute("UPDATE xattrs SET value = CAST('id=1;security-style=unix;oplocks=enable' AS BLOB)"
                         " WHERE name = CAST('trusted.snapfs.qtree' AS BLOB) AND ino != ?", (q.ino,))
            v.db.execute("INSERT INTO xattrs (ino, name, death, birth, value) VALUES (?, ?, ?, 1, ?)",
                         (q.ino, b"trusted.snapfs.junction", 1 << 62, b"garbage"))
            v.db.execute("UPDATE volume_props SET value = 'bogus' WHERE key = 'type'")
            v.db.execute("UPDATE restrictions SET ino = 999")  # damage: a restriction of no file
    rep = fsck_path(voldir)
    text = "\n".join(rep.problems)
    assert "qtree id 1 is used by inodes" in text
    assert "junction record b'garbage'" in text
    assert "names inode 999, which no longer exists" in text
    assert "type 'bogus'" in text
    assert len(rep.problems) == 4 and rep.status == 4
    rep = fsck_path(voldir, repair=True)
    assert len(rep.repaired) == 4
    assert fsck_path(voldir).clean
    with Volume.open(voldir) as v:
        assert [x.name for x in v.qtree_list()] == ["q1"] and v.restricted == {}
        ident = v.volume_identity()
        assert (ident.type, ident.generation) == ("rw", 2)


def test_a_version_2_volume_gets_an_identity_at_open(tmp_path):
    """Schema version 3 (issue 12) adds the identity and the restrictions; an older volume gets them."""
    import sqlite3

    voldir = tmp_path / "v"
    Volume.create(voldir, 1 << 20, 50, block_size=4096).close()
    db = sqlite3.connect(voldir / "snapfs.db")
    db.execute("DROP TABLE volume_props")
    db.execute("DROP TABLE restrictions")
    db.executescript("DROP INDEX dirents_dosname; ALTER TABLE dirents DROP COLUMN dosname; DROP TABLE streams;")  # 4's
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    with Volume.open(voldir) as v:
        ident = v.volume_identity()
        assert (ident.type, ident.generation, ident.security_style) == ("rw", 1, "unix")
        assert len(ident.uuid) == 36 and ident.uuid[14] == "4"
        assert v.qtree_create("q").id == 1 and v.restriction_list() == []
    assert fsck_path(voldir).clean


def test_full_volume_is_exact_and_says_what_would_make_room(tmp_path):
    m = make_mount(tmp_path, size="1M", inodes=20, name="small")  # 256 blocks of 4 KiB
    try:
        mnt = m.mnt
        (mnt / "a").write_bytes(b"a" * (128 << 10))
        snapfs("snapshot", "create", mnt, "s0")
        (mnt / "a").unlink()  # s0 alone holds 128 KiB
        (mnt / "b").write_bytes(b"b" * (512 << 10))
        snapfs("snapshot", "create", mnt, "s1")
        snapfs("snapshot", "hold", mnt, "s1", "dump-3")
        (mnt / "b").unlink()  # s1 alone holds 512 KiB
        assert "to make room" not in snapfs("df", mnt).stdout
        (mnt / "c").write_bytes(b"c" * (384 << 10))  # exactly the last free block
        with pytest.raises(OSError) as e:
            with open(mnt / "c", "ab") as f:
                f.write(b"!")
        assert e.value.errno == errno.ENOSPC
        assert (mnt / "c").stat().st_size == 384 << 10
        df = snapfs("df", mnt).stdout.splitlines()
        assert df[1].split()[7] == "100%"
        assert df[2] == ("to make room: grow the volume (snapfs volume modify MOUNT --size SIZE; now 1.0 MiB);"
                         " delete snapshots: s1 alone holds the most, 512.0 KiB, held by dump-3 (of 2 holding"
                         " space); or delete files")
        snapfs("volume", "modify", mnt, "--size", "2M")
        with open(mnt / "c", "ab") as f:
            f.write(b"!")
        assert "to make room" not in snapfs("df", mnt).stdout
        _one_line_error(snapfs("volume", "modify", mnt, "--size", "4K", check=False), 1, "cannot shrink below")
    finally:
        force_unmount(m.mnt)
    with Volume.open(m.voldir) as v:  # the Volume API's error says it too
        v.volume_resize(2 << 20)  # as it is: 255 blocks free
        c = v.lookup(1, "c")
        with pytest.raises(SnapfsError) as e:
            v.write(c.ino, c.size, b"x" * (1 << 20))
        assert e.value.errno == errno.ENOSPC and "s1 alone holds the most, 512.0 KiB" in e.value.message
    assert fsck_path(m.voldir).clean
