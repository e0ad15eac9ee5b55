"""``snapfs fsck`` end to end: a volume written through a real mount, damaged, checked, repaired, mounted again."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess

import pytest
from fuse_fixtures import Mounted, force_unmount, make_mount, mounted, snapfs  # noqa: F401 (fixtures)

from snapfs.fsck import FSCK_ERROR, FSCK_NONDESTRUCT, FSCK_OK, FSCK_UNCORRECTED

pytestmark = pytest.mark.fuse


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fsck_reconnects_into_lost_found_and_the_mount_shows_it(tmp_path):
    m = make_mount(tmp_path)
    try:
        (m.mnt / "proj" / "src").mkdir(parents=True)
        (m.mnt / "proj" / "src" / "main.c").write_bytes(os.urandom(200_000))
        (m.mnt / "proj" / "README").write_bytes(b"read me\n")
        (m.mnt / "big").write_bytes(os.urandom(300_000))
        (m.mnt / "keep").write_bytes(b"untouched")
        snapfs("snapshot", "create", m.mnt, "before")
        (m.mnt / "big").open("r+b").write(b"changed after the snapshot")
        sums = {p: digest(m.mnt / p) for p in ("proj/src/main.c", "proj/README", "big", "keep")}
        inos = {p: os.stat(m.mnt / p).st_ino for p in ("proj", "big")}
        r = snapfs("fsck", m.voldir, check=False)
        assert r.returncode == FSCK_ERROR and "already mounted" in r.stderr
        r = snapfs("fsck", m.mnt, check=False)
        assert r.returncode == FSCK_ERROR and "unmount it" in r.stderr and "Traceback" not in r.stderr
    finally:
        force_unmount(m.mnt)

    db = sqlite3.connect(m.voldir / "snapfs.db")
    with db:  # lose the live names of /proj and /big, as a bug might; the snapshot keeps its own
        epoch = db.execute("SELECT epoch FROM meta").fetchone()[0]
        for name in (b"proj", b"big"):
            db.execute("UPDATE dirents SET death = ? WHERE parent = 1 AND name = ? AND death = ?",
                       (epoch, name, 1 << 62))
    db.close()

    r = snapfs("fsck", m.voldir, check=False)
    assert r.returncode == FSCK_UNCORRECTED, r.stdout + r.stderr
    assert f"directory {inos['proj']} is not connected" in r.stdout and "run 'snapfs fsck -y'" in r.stderr
    r = snapfs("fsck", "-y", m.voldir, check=False)
    assert r.returncode == FSCK_NONDESTRUCT, r.stdout + r.stderr
    assert "repaired: live tree: /lost+found is missing" in r.stdout
    assert snapfs("fsck", "-n", m.voldir).returncode == FSCK_OK

    snapfs("mount", m.voldir, m.mnt)
    try:
        lf = m.mnt / "lost+found"
        st = os.stat(lf)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 0
        assert sorted(os.listdir(lf)) == sorted(f"#{inos[p]}" for p in ("proj", "big"))
        proj = lf / f"#{inos['proj']}"
        assert os.stat(proj / "..").st_ino == st.st_ino  # '..' follows the new parent
        assert digest(proj / "src" / "main.c") == sums["proj/src/main.c"]
        assert digest(proj / "README") == sums["proj/README"]
        assert digest(lf / f"#{inos['big']}") == sums["big"]
        assert digest(m.mnt / "keep") == sums["keep"]
        assert os.stat(lf / f"#{inos['big']}").st_nlink == 1
        assert os.stat(m.mnt).st_nlink == 3  # lost+found is its only subdirectory
        snap = m.mnt / ".snapshot" / "before"
        assert sorted(os.listdir(snap)) == ["big", "keep", "proj"]  # history as it was
        assert (snap / "big").read_bytes()[:7] != b"changed"
        find = subprocess.run(["find", str(m.mnt), "-name", "main.c"], capture_output=True, text=True, check=True)
        assert find.stdout.split() == [str(proj / "src" / "main.c")]
        os.rename(proj, m.mnt / "proj")  # and the user moves it home
        assert digest(m.mnt / "proj" / "src" / "main.c") == sums["proj/src/main.c"]
    finally:
        force_unmount(m.mnt)
    r = snapfs("fsck", m.voldir, check=False)
    assert r.returncode == FSCK_OK and "clean" in r.stdout, r.stdout
