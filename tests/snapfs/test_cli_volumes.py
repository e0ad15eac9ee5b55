"""``snapfs create`` as a user runs it, and folders that look like volumes but are not."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from fuse_fixtures import SNAPFS, snapfs

from snapfs import Volume


def refused(*args, status: int | None = None, match: str) -> None:
    """The command fails (with ``status``, if given) with one line on stderr saying ``match``."""
    r = snapfs(*args, check=False)
    assert r.returncode != 0 and (status is None or r.returncode == status), (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert match in r.stderr, r.stderr


def test_create_makes_the_volume_asked_for(tmp_path: Path):
    r = snapfs("create", tmp_path / "v", "--size", "3M", "--inodes", "77", "--name", "alpha",
               "--block-size", "8K")
    assert r.stdout.strip() == f"created volume alpha in {tmp_path / 'v'}: 3.0 MiB, 77 inodes"
    with Volume.open(tmp_path / "v") as v:
        assert (v.name, v.block_size, v.meta.total_blocks, v.meta.max_inodes) == ("alpha", 8192, 384, 77)
        assert v.statfs().free_inodes == 76  # the root is one
    snapfs("create", tmp_path / "w", "--size", "10M")
    with Volume.open(tmp_path / "w") as v:  # named after its folder; one inode per 16 KiB, at least 1024; 4 KiB blocks
        assert (v.name, v.block_size, v.meta.total_blocks, v.meta.max_inodes) == ("w", 4096, 2560, 1024)
        assert v.meta.xattr_room == 65536  # the default volume's xattr room stays 64 KiB
    with Volume.open(tmp_path / "v") as v:
        assert v.meta.xattr_room == 8192  # a block size given: its own (ext4's xattr block)


@pytest.mark.parametrize("args, match", [
    (["--inodes", "0"], "--inodes: 0 is not a positive number"),
    (["--inodes", "-3"], "--inodes: -3 is not a positive number"),
    (["--inodes", "many"], "--inodes: bad number 'many'"),
    (["--size", "1000"], "--size 1000 is smaller than one block (4096 bytes)"),
    (["--size", "0"], "--size 0 is smaller than one block"),
    (["--size", "4K", "--block-size", "8K"], "--size 4096 is smaller than one block (8192 bytes)"),
    (["--block-size", "1000"], "--block-size 1000 is not a power of two of at least 512"),
])
def test_create_refuses_figures_that_make_no_volume(tmp_path: Path, args, match):
    refused("create", tmp_path / "v", *args, status=2, match=match)
    assert not (tmp_path / "v").exists()


BAD_CREATE = [
    (["--size", "100000000000T"], "size '100000000000T' is too large"),
    (["--size", "9" * 400], "is too large (at most 9223372036854775807 bytes"),
    (["--size", "4M", "--inodes", "9" * 23], f"--inodes: {'9' * 23} is too large"),
    (["--size", "4M", "--name", "\udcff"], "volume name '\\udcff' is not valid UTF-8"),  # the byte 0xff
    (["--size", "4M", "--block-size", "1T"], "--block-size 1099511627776 is larger than 16.0 MiB"),
    (["--size", "4M", "--name", "a\nb"], "volume name 'a\\nb' may not contain '\\n'"),
    (["--size", "4M", "--name", "a\tb"], "volume name 'a\\tb' may not contain '\\t'"),
    (["--size", "4M", "--name", " v"], "volume name ' v' may not start or end with a blank"),
    (["--size", "4M", "--name", "v" * 5000], "is longer than 255 bytes"),
]


@pytest.mark.parametrize("folder", ["absent", "empty"])
@pytest.mark.parametrize("args, match", BAD_CREATE)
def test_create_refuses_what_no_volume_can_hold_and_leaves_the_folder_as_it_was(tmp_path: Path, args, match, folder):
    v = tmp_path / "v"
    if folder == "empty":
        v.mkdir()
        os.chmod(v, 0o751)
    refused("create", v, *args, status=2, match=match)
    if folder == "empty":
        assert list(v.iterdir()) == [] and v.stat().st_mode & 0o7777 == 0o751
    else:
        assert not v.exists()
    snapfs("create", v, "--size", "4M")  # a retry with good figures makes the volume
    snapfs("fsck", v)


def test_create_in_a_folder_whose_name_is_not_utf8_asks_for_a_name(tmp_path: Path):
    v = tmp_path / "v\udcff"  # the byte 0xff, as the shell passes $'v\xff'
    refused("create", v, "--size", "4M", status=2, match="(the folder's name: give the volume one with --name)")
    assert not os.path.lexists(v)
    r = subprocess.run([SNAPFS, "create", v, "--size", "4M", "--name", "v"], capture_output=True)  # bytes: it names v
    assert r.returncode == 0, r.stderr
    with Volume.open(v) as vol:
        assert vol.name == "v"


def test_a_create_that_fails_midway_removes_what_it_made_and_only_that(tmp_path: Path, monkeypatch):
    """Volume.create checks its figures before it makes anything; when making the files fails
    all the same (here: the schema), it removes the files and the folders it made, and an
    empty folder it was given stays, with its mode.  A folder with content is never touched."""
    from snapfs import store
    from snapfs.errors import SnapfsError

    for figures in [(4 << 20, 1 << 70, "v"), (1 << 63, 100, "v"), (4 << 20, 100, "a\nb"), (4 << 20, 100, "")]:
        with pytest.raises(SnapfsError):
            Volume.create(tmp_path / "new" / "v", figures[0], figures[1], name=figures[2])
        assert not (tmp_path / "new").exists()

    def broken(db):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    monkeypatch.setattr(store, "migrate", broken)
    with pytest.raises(OverflowError):
        Volume.create(tmp_path / "a" / "b" / "v", 4 << 20, 100)
    assert not (tmp_path / "a").exists()  # the parents it made go too
    (tmp_path / "empty").mkdir(mode=0o755)
    os.chmod(tmp_path / "empty", 0o755)
    with pytest.raises(OverflowError):
        Volume.create(tmp_path / "empty", 4 << 20, 100)
    assert list((tmp_path / "empty").iterdir()) == [] and (tmp_path / "empty").stat().st_mode & 0o7777 == 0o755
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("mine")
    with pytest.raises(SnapfsError, match="not an empty folder"):
        Volume.create(tmp_path / "full", 4 << 20, 100)
    assert [f.name for f in (tmp_path / "full").iterdir()] == ["keep"]
    monkeypatch.undo()
    Volume.create(tmp_path / "empty", 4 << 20, 100).close()  # and then it works


def _not_a_volume(d: Path, kind: str) -> None:
    d.mkdir()
    if kind == "empty":
        (d / "snapfs.db").write_bytes(b"")
    elif kind == "garbage":
        (d / "snapfs.db").write_bytes(os.urandom(8192))
    else:
        db = sqlite3.connect(d / "snapfs.db")
        db.execute("CREATE TABLE notes (x)")
        db.commit()
        db.close()
    (d / "data").write_bytes(b"")


@pytest.mark.parametrize("kind, reason", [
    ("empty", "its snapfs.db is empty"),
    ("garbage", "its snapfs.db is not an SQLite database"),
    ("sqlite", "its snapfs.db is an SQLite database of something else"),
])
def test_a_folder_whose_database_is_not_a_volumes_is_named_and_left_alone(tmp_path: Path, kind, reason):
    d, mnt = tmp_path / "v", tmp_path / "mnt"
    _not_a_volume(d, kind)
    mnt.mkdir()
    before = {f.name: f.read_bytes() for f in d.iterdir()}
    refused("fsck", d, status=8, match=reason)
    refused("snapshot", "list", d, status=1, match=reason)
    refused("df", d, status=1, match=reason)
    refused("volume", "show", d, status=1, match=reason)
    refused("mount", d, mnt, status=1, match=reason)
    assert not os.path.ismount(mnt)
    assert {f.name: f.read_bytes() for f in d.iterdir()} == before


def test_df_volume_show_and_snapshot_list_print_exact_figures(tmp_path: Path):
    snapfs("create", tmp_path / "v", "--size", "1M", "--inodes", "50", "--block-size", "4K", "--name", "figs")
    with Volume.open(tmp_path / "v") as v:
        f = v.create_file(1, "f")
        v.write(f.ino, 0, b"x" * 10000)  # 3 blocks
        s = v.snapshot_create("s")
        v.write(f.ino, 0, b"y" * 10000)  # 3 new blocks; the snapshot alone holds the old 3
        uuid = v.volume_identity().uuid
    df = snapfs("df", tmp_path / "v").stdout.splitlines()
    assert df[1].split() == ["figs", "1.0", "MiB", "24.0", "KiB", "1000.0", "KiB", "3%", "12.0", "KiB",
                             "50", "2", "48"]
    show = dict(line.split(":", 1) for line in snapfs("volume", "show", tmp_path / "v").stdout.splitlines())
    assert {k: val.strip() for k, val in show.items() if k != "path"} == {
        "name": "figs", "mounted on": "-", "block size": "4096", "size": "1.0 MiB (1048576)",
        "used": "24.0 KiB (24576)", "available": "1000.0 KiB (1024000)", "live data": "12.0 KiB (12288)",
        "snapshot space": "12.0 KiB (12288)", "snapshots": "1", "inodes used": "2", "inodes free": "48",
        "uuid": uuid, "type": "rw", "generation": "1", "security style": "unix", "aggregate": "aggr0"}
    listing = snapfs("snapshot", "list", tmp_path / "v").stdout.splitlines()
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.created_ns / 1e9))
    assert listing[1].split() == ["s", *created.split(), "12.0", "KiB"]


@pytest.mark.parametrize("args, match", [
    (["qtree", "create"], "qtree create needs MOUNT NAME"),
    (["junction", "delete"], "junction delete needs MOUNT PATH"),
    (["junction", "create"], "junction create needs MOUNT PATH"),
])
def test_a_filer_command_short_of_arguments_is_a_usage_error_before_the_volume_is_looked_at(
        tmp_path: Path, args, match):
    refused(*args[:2], tmp_path / "nowhere", *args[2:], status=2, match=match)


def test_df_lines_up_its_heading_and_figures(tmp_path: Path):
    snapfs("create", tmp_path / "v", "--size", "3M", "--inodes", "77", "--name", "alpha")
    heading, row = snapfs("df", tmp_path / "v").stdout.splitlines()
    assert heading == (f"{'Volume':<16} {'Size':>12} {'Used':>12} {'Avail':>12} {'Use%':>5} {'Snapshots':>12} "
                       f"{'Inodes':>10} {'IUsed':>10} {'IFree':>10}")
    assert row.startswith(f"{'alpha':<16} {'3.0 MiB':>12} ") and row.endswith(f"{77:>10} {1:>10} {76:>10}")
    assert len(row) == len(heading) and row[60] == "%"  # the end of the Use% column
