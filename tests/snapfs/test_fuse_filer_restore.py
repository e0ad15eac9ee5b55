"""pydump/pyrestore on snapfs, what a restore into a volume does beyond Pass V's own objects (issue 13):
a junction goes on the image as the symbolic link it is and comes back a junction (Pass V kind 7) when
its volume is there; a restore into snapfs ignores the locks on its target and keeps each LUN it
restores under client I/O restriction until it ends (also when it fails; a new one from its
creation on, while its data is written); an NT-only file restored into a unix-style qtree gets the
qtree's default unix permissions, a unix-only file into an ntfs-style qtree a default NT ACL, also
where ``--rename`` puts it."""

from __future__ import annotations

import errno
import os
import stat
import time
import subprocess
from pathlib import Path

import pytest
from fuse_fixtures import force_unmount, snapfs, unmount_and_check  # noqa: F401
from test_fuse_pass5 import PYDUMP, PYRESTORE, RESTORE, mount, pass5_of, run, sd

from dumptool.format.pass5 import Kind
from snapfs import client
from snapfs.windows import NTACL_XATTR, ntacl, security

pytestmark = pytest.mark.fuse


def test_a_junction_is_dumped_as_its_symlink_and_restored_a_junction(tmp_path):
    src, dst, other = mount(tmp_path, "src"), mount(tmp_path, "dst"), mount(tmp_path, "other")
    scratch = tmp_path / "real"
    scratch.mkdir()
    try:
        (src.mnt / "dir").mkdir()
        snapfs("junction", "create", src.mnt, "dir/j", "--volume", other.mnt)
        (src.mnt / "f.txt").write_text("a file to carry Pass V\n")
        (other.mnt / "hello").write_text("through the junction\n")
        image = tmp_path / "l0"
        run(PYDUMP, "-0", "-f", image, src.mnt)
        with client.open_volume(other.mnt) as c:
            uuid = c.volume_identity().uuid
        entries = [e for e in pass5_of(image)[1] if e.kind == Kind.JUNCTION]
        assert len(entries) == 1 and f"uuid={uuid};".encode() in entries[0].value, entries
        assert "dir/j" in run(PYRESTORE, "-t", "-f", image).stdout.decode()
        # the real restore: the symbolic link to the other volume's mount point
        run(RESTORE, "-r", "-y", "-f", image, cwd=scratch, env=dict(os.environ, TMPDIR=str(tmp_path)))
        assert os.readlink(scratch / "dir" / "j") == str(other.mnt)
        # pyrestore into a volume: a junction again, to the same volume
        r = run(PYRESTORE, "-r", "-y", "-f", image, cwd=dst.mnt, env=dict(os.environ, TMPDIR=str(tmp_path)))
        assert b"not restored" not in r.stderr, r.stderr
        with client.open_volume(dst.mnt) as c:
            js = c.junction_list()
        assert [(j.path, j.uuid, j.target) for j in js] == [("dir/j", uuid, str(other.mnt))]
        assert (dst.mnt / "dir" / "j" / "hello").read_text() == "through the junction\n"
        assert run(PYRESTORE, "-C", "-f", image, "-D", dst.mnt, ok=False).returncode == 0
        # the volume gone: the junction stays a symbolic link, said in one line
        dst2 = mount(tmp_path, "dst2")
        force_unmount(other.mnt)
        os.rename(other.voldir, tmp_path / "moved")
        r = run(PYRESTORE, "-x", "-y", "-f", image, cwd=dst2.mnt)
        assert os.readlink(dst2.mnt / "dir" / "j") == str(other.mnt)
        assert r.stderr.count(b"restored as a symbolic link") == 1, r.stderr
        with client.open_volume(dst2.mnt) as c:
            assert c.junction_list() == []
        force_unmount(dst2.mnt)
    finally:
        unmount_and_check((src, dst, other), (src, dst))


def _restrictions(m: Path) -> list[tuple[str, str]]:
    with client.open_volume(m) as c:
        return [(r.path, r.owner) for r in c.restriction_list()]


def _restore_from_pipe(image: Path, cwd: Path, front: int) -> subprocess.Popen:
    """pyrestore -x reading the image from a pipe, given its first ``front`` bytes so far."""
    p = subprocess.Popen([PYRESTORE, "-x", "-y", "-f", "-"], cwd=cwd, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdin is not None
    p.stdin.write(image.read_bytes()[:front])
    p.stdin.flush()
    return p


def _finish(p: subprocess.Popen, rest: bytes) -> bytes:
    """Give a held pipe restore the rest of its image and wait for it; what it said on stderr."""
    assert p.stdin is not None and p.stderr is not None
    p.stdin.write(rest)
    p.stdin.close()
    err = p.stderr.read()
    p.wait(timeout=60)
    return err


def _wait_restricted(m: Path, p: subprocess.Popen) -> list[tuple[str, str]]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and p.poll() is None:
        got = _restrictions(m)
        if got:
            return got
        time.sleep(0.1)
    return []


def test_a_restore_into_snapfs_ignores_locks_and_restricts_the_luns_it_restores(tmp_path):
    src, dst = mount(tmp_path, "src"), mount(tmp_path, "dst")
    try:
        snapfs("lun", "create", src.mnt, "lun0", "--size", "1M", "--ostype", "linux")
        with open(src.mnt / "lun0", "r+b") as f:
            f.write(os.urandom(1 << 20))
        (src.mnt / "f.txt").write_text("new\n")
        image = tmp_path / "l0"
        run(PYDUMP, "-0", "-f", image, src.mnt)
        run(PYRESTORE, "-x", "-y", "-f", image, cwd=dst.mnt)
        assert _restrictions(dst.mnt) == []
        (dst.mnt / "f.txt").write_text("old\n")
        snapfs("lock", "add", dst.mnt, "f.txt", "--type", "advisory", "--owner", "smb-7", "--share", "deny-write")
        with pytest.raises(PermissionError):
            (dst.mnt / "f.txt").write_text("anyone else\n")

        # restored again from a pipe, held half-way: the LUN is restricted to the restore meanwhile
        p = _restore_from_pipe(image, dst.mnt, 700 << 10)
        try:
            held = _wait_restricted(dst.mnt, p)
            assert held == [("lun0", f"pyrestore-{p.pid}")], (held, p.poll())
            with pytest.raises(OSError) as busy:
                open(dst.mnt / "lun0", "rb").close()
            assert busy.value.errno == errno.EBUSY
            err = _finish(p, image.read_bytes()[700 << 10:])
        finally:
            p.kill() if p.poll() is None else None
        assert p.returncode == 0, err
        assert (dst.mnt / "f.txt").read_text() == "new\n"  # the lock did not stop the restore
        assert (dst.mnt / "lun0").read_bytes() == (src.mnt / "lun0").read_bytes()
        assert _restrictions(dst.mnt) == []
        with client.open_volume(dst.mnt) as c:
            assert [x.path for x in c.lun_list()] == ["lun0"]

        # a restore that fails half-way lifts its restriction too
        p = _restore_from_pipe(image, dst.mnt, 700 << 10)
        try:
            assert _wait_restricted(dst.mnt, p)
            err = _finish(p, b"")  # the image cut short
        finally:
            p.kill() if p.poll() is None else None
        assert p.returncode != 0 and b"Traceback" not in err, err
        assert _restrictions(dst.mnt) == []

        # run as the owner of a restriction on its target (snapfs restrict exec): it keeps that owner
        snapfs("restrict", dst.mnt, "f.txt", "--owner", "restore-7")
        r = snapfs("restrict", "exec", dst.mnt, "--owner", "restore-7", "--", "sh", "-c",
                   'cd "$0" && exec "$1" -x -y -f "$2"', dst.mnt, PYRESTORE, image, check=False)
        assert r.returncode == 0, r.stderr
        assert _restrictions(dst.mnt) == [("f.txt", "restore-7")]
    finally:
        unmount_and_check((src, dst), (src, dst))


def test_permissions_across_qtree_styles_follow_the_target_qtree(tmp_path):
    src, dst = mount(tmp_path, "src"), mount(tmp_path, "dst")
    plain = tmp_path / "plain"
    plain.mkdir()
    try:
        for m in (src.mnt, dst.mnt):
            snapfs("qtree", "create", m, "qn", "--security-style", "ntfs")
            snapfs("qtree", "create", m, "qu", "--security-style", "unix")
        nt = src.mnt / "qn" / "nt.doc"  # only NT permissions: an NT ACL, no permission bits
        nt.write_text("windows\n")
        os.setxattr(nt, NTACL_XATTR, sd(3))
        os.chmod(nt, 0)
        (src.mnt / "qn" / "both.doc").write_text("mode and ACL\n")  # not NT-only: kept as it is
        os.chmod(src.mnt / "qn" / "both.doc", 0o640)
        os.setxattr(src.mnt / "qn" / "both.doc", NTACL_XATTR, sd(2))
        ux = src.mnt / "qu" / "u.txt"  # only unix permissions
        ux.write_text("unix\n")
        os.chmod(ux, 0o640)
        os.chown(ux, 1234, 56)
        (src.mnt / "qu" / "d").mkdir()
        (src.mnt / "qu" / "d" / "v.txt").write_text("deeper\n")
        img_n, img_u = tmp_path / "qn.dump", tmp_path / "qu.dump"
        run(PYDUMP, "-0", "-f", img_n, src.mnt / "qn")
        run(PYDUMP, "-0", "-f", img_u, src.mnt / "qu")
        # each qtree into a qtree of the other style
        run(PYRESTORE, "-x", "-y", "-f", img_n, cwd=dst.mnt / "qu")
        run(PYRESTORE, "-x", "-y", "-f", img_u, cwd=dst.mnt / "qn")
        assert stat.S_IMODE(os.stat(dst.mnt / "qu" / "nt.doc").st_mode) == 0o755
        assert stat.S_IMODE(os.stat(dst.mnt / "qu" / "both.doc").st_mode) == 0o640
        assert os.getxattr(dst.mnt / "qu" / "nt.doc", NTACL_XATTR) == sd(3)  # its ACL kept
        default = ntacl.encode(security.default_descriptor(security.Sid(22, (1, 1234)), security.Sid(22, (2, 56)),
                                                           0o640))
        assert os.getxattr(dst.mnt / "qn" / "u.txt", NTACL_XATTR) == default
        assert stat.S_IMODE(os.stat(dst.mnt / "qn" / "u.txt").st_mode) == 0o640
        # stored with the files, not only shown: a dump of the target carries them
        img_d = tmp_path / "dst.dump"
        run(PYDUMP, "-0", "-f", img_d, dst.mnt)
        run(PYRESTORE, "-x", "-y", "-f", img_d, cwd=plain)
        assert stat.S_IMODE(os.lstat(plain / "qu" / "nt.doc").st_mode) == 0o755
        assert os.getxattr(plain / "qn" / "u.txt", NTACL_XATTR) == default
        assert os.getxattr(plain / "qn" / "d" / "v.txt", NTACL_XATTR)  # a directory's files too
        # a restore into a qtree of the same style changes nothing
        run(PYRESTORE, "-x", "-y", "-f", img_u, cwd=dst.mnt / "qu")
        assert NTACL_XATTR.decode() not in os.listxattr(dst.mnt / "qu" / "u.txt")
    finally:
        unmount_and_check((src, dst), (src, dst))


def test_a_new_lun_is_restricted_from_its_creation_until_the_restore_ends(tmp_path):
    src, dst = mount(tmp_path, "src"), mount(tmp_path, "dst")
    try:
        snapfs("lun", "create", src.mnt, "lun0", "--size", "4M", "--ostype", "linux")
        data = os.urandom(4 << 20)
        with open(src.mnt / "lun0", "r+b") as f:
            f.write(data)
        (src.mnt / "d").mkdir()
        (src.mnt / "d" / "deep.txt").write_text("deep\n")
        (src.mnt / "top.txt").write_text("top\n")  # (held too, where a LUN could be, and lifted)
        image = tmp_path / "l0"
        run(PYDUMP, "-0", "-f", image, src.mnt)
        # into a volume without it: held after 2 MiB, half of the LUN's data written
        p = _restore_from_pipe(image, dst.mnt, 2 << 20)
        try:
            assert _wait_restricted(dst.mnt, p), p.poll()
            deadline = time.monotonic() + 15
            while os.stat(dst.mnt / "lun0").st_size < 1 << 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            held = _restrictions(dst.mnt)
            assert ("lun0", f"pyrestore-{p.pid}") in held and ("d/deep.txt", f"pyrestore-{p.pid}") not in held
            with client.open_volume(dst.mnt) as c:
                assert c.lun_list() == []  # not a LUN yet: its data is being written
            with pytest.raises(OSError) as busy:
                open(dst.mnt / "lun0", "rb").close()
            assert busy.value.errno == errno.EBUSY
            listed = snapfs("restrict", "list", dst.mnt).stdout
            assert "lun0" in listed and f"pyrestore-{p.pid}" in listed, listed
            err = _finish(p, image.read_bytes()[2 << 20:])
        finally:
            p.kill() if p.poll() is None else None
        assert p.returncode == 0, err
        assert _restrictions(dst.mnt) == []
        assert (dst.mnt / "lun0").read_bytes() == data
        with client.open_volume(dst.mnt) as c:
            assert [x.path for x in c.lun_list()] == ["lun0"]
        assert (dst.mnt / "d" / "deep.txt").read_text() == "deep\n"
        assert (dst.mnt / "top.txt").read_text() == "top\n"
    finally:
        unmount_and_check((src, dst), (src, dst))


def test_the_qtree_style_rules_follow_rename_to_where_a_file_lands(tmp_path):
    src, dst = mount(tmp_path, "src"), mount(tmp_path, "dst")
    try:
        for m in (src.mnt, dst.mnt):
            snapfs("qtree", "create", m, "qn", "--security-style", "ntfs")
            snapfs("qtree", "create", m, "qu", "--security-style", "unix")
        nt = src.mnt / "qn" / "nt.doc"  # only NT permissions
        nt.write_text("windows\n")
        os.setxattr(nt, NTACL_XATTR, sd(3))
        os.chmod(nt, 0)
        big = src.mnt / "qn" / "big.doc"  # the same with an NT ACL too big for its EA record (Pass V)
        big.write_text("big ACL\n")
        os.setxattr(big, NTACL_XATTR, sd(300))
        os.chmod(big, 0)
        ux = src.mnt / "qu" / "u.txt"  # only unix permissions
        ux.write_text("unix\n")
        os.chmod(ux, 0o640)
        os.chown(ux, 1234, 56)
        stay_nt = src.mnt / "qn" / "stay.doc"  # NT-only, renamed within its ntfs qtree: kept as it is
        stay_nt.write_text("stays\n")
        os.setxattr(stay_nt, NTACL_XATTR, sd(1))
        os.chmod(stay_nt, 0)
        image = tmp_path / "vol.dump"
        run(PYDUMP, "-0", "-f", image, src.mnt)
        # each file into the qtree of the other style, by --rename
        run(PYRESTORE, "-x", "-y", "-f", image, "--rename", "qn/nt.doc=qu/nt.doc", "--rename", "qu/u.txt=qn/u.txt",
            "--rename", "qn/stay.doc=qn/moved.doc", "--rename", "qn/big.doc=qu/big.doc", "./qn/nt.doc", "./qu/u.txt",
            "./qn/stay.doc", "./qn/big.doc", cwd=dst.mnt)
        assert stat.S_IMODE(os.stat(dst.mnt / "qu" / "nt.doc").st_mode) == 0o755
        assert os.getxattr(dst.mnt / "qu" / "nt.doc", NTACL_XATTR) == sd(3)  # its ACL kept
        assert os.getxattr(dst.mnt / "qu" / "big.doc", NTACL_XATTR) == sd(300)  # Pass V's follows it too
        default = ntacl.encode(security.default_descriptor(security.Sid(22, (1, 1234)), security.Sid(22, (2, 56)),
                                                           0o640))
        assert os.getxattr(dst.mnt / "qn" / "u.txt", NTACL_XATTR) == default
        assert stat.S_IMODE(os.stat(dst.mnt / "qn" / "u.txt").st_mode) == 0o640
        assert stat.S_IMODE(os.stat(dst.mnt / "qn" / "moved.doc").st_mode) == 0
        assert os.getxattr(dst.mnt / "qn" / "moved.doc", NTACL_XATTR) == sd(1)
        assert not (dst.mnt / "qn" / "nt.doc").exists() and not (dst.mnt / "qu" / "u.txt").exists()
        # stored with the files, not only shown by the mount: a dump of the target carries them
        plain = tmp_path / "plain"
        plain.mkdir()
        run(PYDUMP, "-0", "-f", tmp_path / "dst.dump", dst.mnt)
        run(PYRESTORE, "-x", "-y", "-f", tmp_path / "dst.dump", "./qu/nt.doc", "./qn/u.txt", "./qn/moved.doc",
            cwd=plain)  # (not big.doc: its ACL is too big for the xattrs of most file systems)
        assert stat.S_IMODE(os.lstat(plain / "qu" / "nt.doc").st_mode) == 0o755
        assert os.getxattr(plain / "qu" / "nt.doc", NTACL_XATTR) == sd(3)
        assert os.getxattr(plain / "qn" / "u.txt", NTACL_XATTR) == default
        assert stat.S_IMODE(os.lstat(plain / "qn" / "moved.doc").st_mode) == 0
    finally:
        unmount_and_check((src, dst), (src, dst))
