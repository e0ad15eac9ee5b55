"""A volume's folder is its owner's alone: ``data`` holds every file's bytes,
whatever modes the mount shows for them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from fuse_fixtures import as_nobody, force_unmount, snapfs

from snapfs import Volume


def _modes(voldir: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(os.lstat(voldir).st_mode)}
    for e in os.scandir(voldir):
        out[e.name] = stat.S_IMODE(e.stat(follow_symlinks=False).st_mode)
    return out


def _secret_volume(top: Path) -> Path:
    """A volume in ``top/v`` (top world-searchable, as a home or /srv is) holding a file only root may read."""
    os.chmod(top, 0o755)
    voldir = top / "v"
    old = os.umask(0o022)
    try:
        snapfs("create", voldir, "--size", "4M", "--block-size", "4K")
    finally:
        os.umask(old)
    with Volume.open(voldir) as vol:
        f = vol.create_file(1, "secret", 0o600)
        vol.write(f.ino, 0, b"the launch code is 0000\n")
    return voldir


def test_create_makes_the_folder_0700_and_its_files_0600(tmp_path: Path):
    voldir = _secret_volume(tmp_path)
    modes = _modes(voldir)
    assert modes.pop(".") == 0o700
    assert {"snapfs.db", "data", "lock"} <= set(modes)
    assert modes == {name: 0o600 for name in modes}, modes
    r = as_nobody(tmp_path, "grep", "-c", "launch code", "v/data")
    assert r.returncode == 2 and "Permission denied" in r.stderr, (r.returncode, r.stdout, r.stderr)


def _widen(voldir: Path) -> None:
    os.chmod(voldir, 0o755)
    for name in ("snapfs.db", "data", "lock"):
        os.chmod(voldir / name, 0o644)


def test_fsck_reports_wide_modes_and_tightens_them_on_repair(tmp_path: Path):
    voldir = _secret_volume(tmp_path)
    _widen(voldir)
    assert as_nobody(tmp_path, "grep", "-c", "launch code", "v/data").stdout.strip() == "1"  # the hole
    r = snapfs("fsck", "-n", voldir, check=False)
    assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
    for name in (".", "snapfs.db", "data", "lock"):
        path = voldir if name == "." else voldir / name
        want = "0700" if name == "." else "0600"
        assert f"problem: {path} has mode {'0755' if name == '.' else '0644'}" in r.stdout, r.stdout
        assert f"it should be {want}" in r.stdout
    assert _modes(voldir)["data"] == 0o644  # -n changes nothing
    r = snapfs("fsck", "-y", voldir, check=False)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert set(_modes(voldir).values()) <= {0o700, 0o600}
    assert snapfs("fsck", "-n", voldir, check=False).returncode == 0
    assert as_nobody(tmp_path, "grep", "-c", "launch code", "v/data").returncode == 2


@pytest.mark.fuse
def test_mount_tightens_an_older_volumes_modes(tmp_path: Path):
    voldir = _secret_volume(tmp_path)
    _widen(voldir)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    snapfs("mount", voldir, mnt)
    try:
        assert (mnt / "secret").read_bytes().startswith(b"the launch code")
        modes = _modes(voldir)
        assert modes.pop(".") == 0o700
        assert modes == {name: 0o600 for name in modes}, modes  # the -wal, -shm, log and socket too
        assert {"snapfs.db-wal", "mount.log", "control.sock"} <= set(modes)
        assert as_nobody(tmp_path, "cat", "v/data").returncode != 0
    finally:
        force_unmount(mnt)
    log = (voldir / "mount.log").read_text()
    assert f"{voldir / 'data'}: mode 0644 tightened to 0600" in log, log
