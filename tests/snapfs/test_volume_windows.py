"""Windows metadata at the Volume: DOS 8.3 names per entry, NT ACL checks, the security-style rule."""

from __future__ import annotations

import errno

import pytest
from volume_fixtures import vol, voldir  # noqa: F401 (fixtures)

from snapfs import Volume, fsck
from snapfs.errors import SnapfsError
from snapfs.schema import SCHEMA_VERSION
from snapfs.volume import ROOT_INO
from snapfs.windows import NTACL_XATTR, ntacl, security
from snapfs.winmeta import DOSNAME_XATTR


def short(v: Volume, parent: int, name: str, snap: int | None = None) -> str:
    return v.getxattr(v.lookup(parent, name, snap).ino, DOSNAME_XATTR, snap).decode()


def test_short_names_are_made_as_ontap_documents(vol):
    d = vol.mkdir(ROOT_INO, "docs").ino
    for i in range(1, 8):
        vol.create_file(d, f"specification{i}.htm")
    names = [short(vol, d, f"specification{i}.htm") for i in range(1, 8)]
    assert names[:5] == [f"SPECIF~{i}.HTM" for i in range(1, 6)]
    assert all(n.startswith("SP") and n.endswith("~1.HTM") and len(n) == 12 for n in names[5:])  # unrelated, unique
    assert len(set(names)) == 7
    vol.create_file(d, "readme.txt")
    vol.mkdir(d, "My Documents")
    vol.create_file(d, ".bashrc")
    assert [short(vol, d, n) for n in ("readme.txt", "My Documents", ".bashrc")] == ["README.TXT", "MYDOCU~1", "BASHRC~1"]
    # a new name that is someone's short name gets a short name of its own
    vol.create_file(d, "SPECIF~1.HTM")
    assert short(vol, d, "SPECIF~1.HTM") not in names
    # a freed short name is given again
    vol.unlink(d, "specification2.htm")
    vol.create_file(d, "specification-new.htm")
    assert short(vol, d, "specification-new.htm") == "SPECIF~2.HTM"
    with pytest.raises(SnapfsError) as e:
        vol.getxattr(ROOT_INO, DOSNAME_XATTR)
    assert e.value.errno == errno.ENODATA


def test_a_renamed_entry_keeps_its_short_name_unless_it_collides(vol):
    a, b = vol.mkdir(ROOT_INO, "a").ino, vol.mkdir(ROOT_INO, "b").ino
    for i in range(1, 4):
        vol.create_file(a, f"specification{i}.htm")
        vol.create_file(b, f"specification-b{i}.htm")
    vol.rename(a, "specification3.htm", a, "another long name.htm")
    assert short(vol, a, "another long name.htm") == "SPECIF~3.HTM"
    vol.rename(a, "another long name.htm", b, "moved here.htm")  # SPECIF~3.HTM is taken in b
    assert short(vol, b, "moved here.htm") == "MOVEDH~1.HTM"
    vol.rename(a, "specification1.htm", ROOT_INO, "x.txt")  # an 8.3 name is its own short name
    assert short(vol, ROOT_INO, "x.txt") == "X.TXT"
    vol.rename(ROOT_INO, "x.txt", ROOT_INO, "a longer name.txt")  # and is not kept: X.TXT is free again
    assert short(vol, ROOT_INO, "a longer name.txt") == "ALONGE~1.TXT"
    vol.create_file(ROOT_INO, "x.txt")
    assert short(vol, ROOT_INO, "x.txt") == "X.TXT"
    vol.rename(b, "specification-b2.htm", b, "specification-b3.htm", 2)  # RENAME_EXCHANGE: they go with the files
    assert short(vol, b, "specification-b3.htm") == "SPECIF~2.HTM" and short(vol, b, "specification-b2.htm") == "SPECIF~3.HTM"
    vol.rename(a, "specification2.htm", b, "specification-b1.htm", 2)  # SPECIF~2.HTM is taken in b: a new one
    assert short(vol, b, "specification-b1.htm") == "SPECIF~1.HTM" and short(vol, a, "specification2.htm") == "SPECIF~1.HTM"


def test_short_names_stay_in_snapshots_and_survive_a_reopen(voldir):
    with Volume.create(voldir, 4 << 20, 100, block_size=4096) as v:
        d = v.mkdir(ROOT_INO, "d").ino
        v.create_file(d, "specification.htm")
        snap = v.snapshot_create("s").id
        v.rename(d, "specification.htm", d, "renamed specification.htm")
        v.create_file(d, "specification.htm")
        assert short(v, d, "specification.htm") == "SPECIF~2.HTM"
        assert short(v, d, "specification.htm", snap) == "SPECIF~1.HTM"
    with Volume.open(voldir) as v:
        assert short(v, d, "renamed specification.htm") == "SPECIF~1.HTM"
        assert short(v, d, "specification.htm", snap) == "SPECIF~1.HTM"
        assert fsck(v).clean
        v.snapshot_delete("s")
        assert fsck(v).clean


def test_the_short_name_xattr_is_read_only(vol):
    f = vol.create_file(ROOT_INO, "a long file name").ino
    for call in (lambda: vol.setxattr(f, DOSNAME_XATTR, b"X"), lambda: vol.removexattr(f, DOSNAME_XATTR)):
        with pytest.raises(SnapfsError) as e:
            call()
        assert e.value.errno == errno.EPERM
    assert DOSNAME_XATTR not in vol.listxattr(f)  # virtual, as snapfs's other ones


def _sd(n: int) -> security.Descriptor:
    aces = tuple(security.Ace(0, 0, 0x1200A9, security.Sid(5, (21, 7, 8, 9, 1000 + i))) for i in range(n))
    return security.Descriptor(security.Sid(5, (21, 7, 8, 9, 500)), security.Sid(5, (32, 544)),
                               security.Acl(2, aces))


def test_nt_acls_up_to_1024_aces_are_kept_and_a_1025th_is_refused(tmp_path):
    with Volume.create(tmp_path / "v", 4 << 20, 100) as v:  # 64 KiB blocks: room for a 36 KB ACL
        f = v.create_file(ROOT_INO, "f").ino
        blob = ntacl.encode(_sd(1024))
        assert len(blob) > 36_000
        v.setxattr(f, NTACL_XATTR, blob)
        snap = v.snapshot_create("s").id
        too_many = bytearray(blob)
        dacl = int.from_bytes(too_many[24:28], "little")
        too_many[dacl + 4:dacl + 6] = (1025).to_bytes(2, "little")
        for bad in (bytes(too_many), b"not an ACL"):
            with pytest.raises(SnapfsError) as e:
                v.setxattr(f, NTACL_XATTR, bad)
            assert e.value.errno == errno.EINVAL and "security.NTACL refused" in e.value.message
        v.setxattr(f, NTACL_XATTR, ntacl.encode(_sd(1)))
        assert len(ntacl.decode(v.getxattr(f, NTACL_XATTR, snap)).sd.dacl.aces) == 1024
        assert len(ntacl.decode(v.getxattr(f, NTACL_XATTR)).sd.dacl.aces) == 1
        assert fsck(v).clean


def test_a_unix_file_in_an_ntfs_style_tree_reports_a_default_nt_acl(vol):
    f = vol.create_file(ROOT_INO, "f", mode=0o640, uid=1000, gid=100).ino
    with pytest.raises(SnapfsError):
        vol.getxattr(f, NTACL_XATTR)  # unix style (the volume's, qtree 0): none
    q = vol.qtree_create("win", "ntfs").ino
    f = vol.create_file(q, "f", mode=0o640, uid=1000, gid=100).ino
    assert vol.security_style(f) == "ntfs"
    n = ntacl.decode(vol.getxattr(f, NTACL_XATTR))
    assert (n.version, str(n.sd.owner), str(n.sd.group)) == (1, "S-1-22-1-1000", "S-1-22-2-100")
    assert [(str(a.sid), a.mask) for a in n.sd.dacl.aces] == [
        ("S-1-22-1-1000", security.FULL_CONTROL | security.READ_EXECUTE), ("S-1-22-2-100", security.READ_EXECUTE)]
    vol.setxattr(f, NTACL_XATTR, ntacl.encode(_sd(2)))  # a stored ACL wins
    assert len(ntacl.decode(vol.getxattr(f, NTACL_XATTR)).sd.dacl.aces) == 2


def test_a_version_3_volume_gets_short_names_and_streams_on_open(voldir):
    import sqlite3

    with Volume.create(voldir, 4 << 20, 100, block_size=4096) as v:
        d = v.mkdir(ROOT_INO, "d").ino
        for n in ("specification one.htm", "specification two.htm", "ok.txt"):
            v.create_file(d, n)
    db = sqlite3.connect(voldir / "snapfs.db")
    db.executescript("DROP INDEX dirents_dosname; ALTER TABLE dirents DROP COLUMN dosname; DROP TABLE streams;"
                     " PRAGMA user_version = 3;")
    db.close()
    with Volume.open(voldir) as v:
        assert v.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [short(v, d, n) for n in ("specification one.htm", "specification two.htm", "ok.txt")] == [
            "SPECIF~1.HTM", "SPECIF~2.HTM", "OK.TXT"]
        v.stream_write(v.lookup(d, "ok.txt").ino, "big", b"x" * 100_000)
        assert fsck(v).clean


def test_the_snapshot_reader_gives_short_names_and_large_streams(voldir):
    from snapfs.reader import open_snapshot

    with Volume.create(voldir, 4 << 20, 100, block_size=4096) as v:
        d = v.mkdir(ROOT_INO, "d").ino
        f = v.create_file(d, "specification.htm").ino
        v.stream_write(f, "big", b"y" * 200_000)
        v.stream_write(f, "small", b"s")
        v.snapshot_create("s")
        v.snapshot_hold("s", "t")
        v.stream_write(f, "big", b"z")
        v.rename(d, "specification.htm", d, "x.htm")
    with open_snapshot(voldir, "s", holder="t") as r:
        assert r.dosnames(d) == {b"specification.htm": b"SPECIF~1.HTM"}
        assert r.large_streams(f) == {b"big": b"y" * 200_000}
        assert r.inode(f).xattrs[b"user.DosStream.small:$DATA"] == b"s\0"


def test_fsck_gives_a_lost_short_name_back(voldir):
    from snapfs.fsck import fsck as run_fsck

    with Volume.create(voldir, 4 << 20, 100, block_size=4096) as v:
        v.create_file(ROOT_INO, "specification one.htm")
        v.create_file(ROOT_INO, "specification two.htm")
        v.db.execute("UPDATE dirents SET dosname = NULL WHERE name = ?", (b"specification one.htm",))
        rep = run_fsck(v)
        assert rep.problems == ["live tree: entry b'specification one.htm' in directory 1 has no DOS 8.3 name"]
        assert run_fsck(v, repair=True).repaired
        assert short(v, ROOT_INO, "specification one.htm") == "SPECIF~1.HTM"
        assert run_fsck(v).clean


def test_a_file_with_only_an_nt_acl_in_a_unix_style_tree_shows_default_permissions(vol):
    f = vol.create_file(ROOT_INO, "nt-only", mode=0).ino
    plain = vol.create_file(ROOT_INO, "no-acl", mode=0).ino
    assert vol.getattr(f).mode & 0o7777 == 0
    vol.setxattr(f, NTACL_XATTR, ntacl.encode(_sd(1)))
    snap = vol.snapshot_create("s").id
    assert vol.getattr(f).mode & 0o7777 == 0o755
    assert vol.lookup(ROOT_INO, "nt-only").mode & 0o7777 == 0o755
    assert {e.name: e.attrs.mode & 0o7777 for e in vol.readdir(ROOT_INO)}[b"nt-only"] == 0o755
    assert vol.getattr(f, snap).mode & 0o7777 == 0o755
    assert vol.getattr(plain).mode & 0o7777 == 0  # no NT ACL: its own (no) permissions
    vol.setattr(f, mode=0o600)  # a chmod gives it unix permissions of its own
    assert vol.getattr(f).mode & 0o7777 == 0o600
