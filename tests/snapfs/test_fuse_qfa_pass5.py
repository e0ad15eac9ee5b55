"""``pyrestore -x -Q FILE`` of a file whose big xattr went to Pass V (issue 13): the xattr comes
back into a snapfs volume, from the Pass V position pydump -Q wrote in the QFA file's fourth
line (which the real restore 0.4b47 reads and ignores), else from the image's offset map, else by
reading on from the last wanted file to the end; the records read stay few where a position is
known."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, fsck_clean_after, snapfs

from snapfs import Volume

pytestmark = pytest.mark.fuse

BIN = Path(sys.executable).parent
PYDUMP, PYRESTORE, RESTORE = str(BIN / "pydump"), str(BIN / "pyrestore"), "/sbin/restore"


def run(*cmd, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    r = subprocess.run([*map(str, cmd)], capture_output=True, text=True, cwd=cwd, env=env,
                       stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return r


def mount(tmp_path: Path, name: str) -> Mounted:
    voldir, mnt = tmp_path / name, tmp_path / f"{name}-mnt"
    mnt.mkdir()
    Volume.create(voldir, 64 << 20, 200, name=name).close()  # xattrs of up to 64 KiB a file
    snapfs("mount", voldir, mnt, "-o", "allow_other")
    return Mounted(voldir, mnt)


def records_read(r: subprocess.CompletedProcess) -> int:
    lines = [line for line in r.stdout.splitlines() if "records read" in line]
    assert lines, r.stdout
    return int(lines[0].split()[0])


def test_a_qfa_extract_restores_what_pass_v_holds(tmp_path):
    state = tmp_path / "state"
    env = dict(os.environ, SNAPDUMP_STATE_DIR=str(state))
    with fsck_clean_after(mount(tmp_path, "src")) as src, \
            fsck_clean_after(mount(tmp_path, "dst")) as dst:
        a = src.mnt / "a.txt"
        a.write_text("a\n")
        big = os.urandom(6000)
        os.setxattr(a, "user.big", big)  # more than the file's EA record holds: it goes to Pass V
        (src.mnt / "m.bin").write_bytes(os.urandom(16 << 20))  # 16 MiB between a.txt and Pass V
        (src.mnt / "z.txt").write_text("the carrier\n")
        image, qfa = tmp_path / "img", tmp_path / "img.qfa"
        r = run(PYDUMP, "-0", "-Q", qfa, "-f", image, src.mnt, cwd=tmp_path, env=env)
        assert "(Pass V)" in r.stderr
        lines = qfa.read_text().split("\n")
        plain = tmp_path / "plain.qfa"  # a map with no Pass V position (a real dump's, an older pydump's)
        plain.write_text("\n".join(lines[:3] + [""] + lines[4:]))
        (maps,) = (state / "history").glob("*.fh")

        def extract(name: str, map_file: Path) -> subprocess.CompletedProcess:
            out = dst.mnt / name
            out.mkdir()
            r = run(PYRESTORE, "-x", "-v", "--force", "-Q", map_file, "-f", image, "./a.txt", cwd=out, env=env)
            assert (out / "a.txt").read_text() == "a\n"
            assert os.getxattr(out / "a.txt", "user.big") == big, name
            assert not (out / "m.bin").exists()
            return r

        # a map without Pass V's position: the offset map's, straight there, a few reads
        r = extract("history", plain)
        assert lines[3].startswith("pass5\t"), lines[:6]  # the line real restore reads as "empty"
        to_pass5 = f"seek to inode {lines[3].split()[1]} at {lines[3].split()[3]} of volume 1"
        assert to_pass5 in r.stdout and records_read(r) < 10, r.stdout
        # the QFA file's own, with or without the offset map
        for name, map_file in (("qfa", qfa), ("qfa-alone", qfa)):
            if name == "qfa-alone":
                maps.unlink()
            r = extract(name, map_file)
            assert to_pass5 in r.stdout and records_read(r) < 10, (name, r.stdout)
        # neither: read on to the end, saying why
        r = extract("neither", plain)
        assert "reading on to the end of the image for Pass V" in r.stdout, r.stdout
        assert to_pass5 not in r.stdout and records_read(r) > 16, r.stdout

        # the real restore reads pydump's QFA file as its own
        real = dst.mnt / "real"
        real.mkdir()
        r = subprocess.run([RESTORE, "-x", "-Q", str(qfa), "-f", str(image), "./a.txt"], cwd=real,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        assert r.returncode == 0, r.stderr  # and nothing said but its own lines
        assert r.stderr.replace("set owner/mode for '.'? [yn] ", "") == f"reading QFA positions from {qfa}\n", r.stderr
        assert (real / "a.txt").read_text() == "a\n"
        r = subprocess.run([RESTORE, "-t", "-Q", str(qfa), "-f", str(image)], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=120)
        assert r.returncode == 0 and "./z.txt" in r.stdout, r.stderr
        assert r.stderr == f"reading QFA positions from {qfa}\n", r.stderr
