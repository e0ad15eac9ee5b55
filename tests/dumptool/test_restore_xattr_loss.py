"""An extended attribute the target cannot take is metadata lost: pyrestore
names it and exits 1 (the file's data is still restored), never 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import tmpfs_at

BIN = Path(sys.executable).parent


def test_an_xattr_the_target_cannot_hold_makes_the_restore_exit_1(tmp_path: Path) -> None:
    image = tmp_path / "image"
    with tmpfs_at(tmp_path / "src", "size=16m") as src:  # a tmpfs holds a 6,000-byte xattr; ext4 does not
        (src / "kept.txt").write_text("kept\n")
        big = src / "big.txt"
        big.write_text("data\n")
        os.setxattr(big, "user.review", os.urandom(6000))
        os.setxattr(big, "user.small", b"fits")
        subprocess.run([BIN / "pydump", "-0", "-q", "-f", image, src], check=True, capture_output=True)
    out = tmp_path / "out"  # on the tests' ext4: an xattr value of at most one 4 KiB block
    out.mkdir()
    r = subprocess.run([BIN / "pyrestore", "-r", "-y", "-f", image], cwd=out, capture_output=True, text=True)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "big.txt: cannot set extended attribute user.review" in r.stderr
    assert "Traceback" not in r.stderr
    # what could be restored was
    assert (out / "big.txt").read_text() == "data\n" and (out / "kept.txt").read_text() == "kept\n"
    assert os.getxattr(out / "big.txt", "user.small") == b"fits"
