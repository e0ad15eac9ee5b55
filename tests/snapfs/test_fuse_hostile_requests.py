"""Requests a mount's daemon must survive: figures too large for the volume, requests that fail
in a way no command expects, a stream source that is no regular file.  Each is refused in one line, and the mount goes on serving (the
daemon is the only writer of the volume: its end would lose the writes in progress)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from fuse_fixtures import SNAPFS, Mounted, mounted, refused, snapfs  # noqa: F401 (fixtures)

from snapfs import control

pytestmark = pytest.mark.fuse

TOO_BIG = str(1 << 63)  # one more than SQLite (and a file offset) can hold


def ask(voldir: Path, line: bytes) -> dict:
    """One raw request line to the daemon (no client in between), and its answer."""
    s = control.connect(voldir, timeout=20)
    assert s is not None, "nobody serves the control socket"
    with s, s.makefile("rwb") as f:
        f.write(line + b"\n")
        f.flush()
        answer = f.readline()
    assert answer, "the daemon closed the channel without an answer"
    return json.loads(answer)


def serving(m: Mounted, writer, n: int) -> None:
    """The mount still answers: a listing, a new file, the open writer's next bytes, df."""
    assert "d" in os.listdir(m.mnt)
    (m.mnt / f"after{n}").write_bytes(b"after %d" % n)
    writer.write(b"line %d\n" % n)
    writer.flush()
    os.fsync(writer.fileno())
    snapfs("df", m.mnt)


@pytest.mark.parametrize("how", ["cli", "raw"])
def test_figures_too_large_for_the_volume_are_refused_and_the_mount_serves_on(mounted: Mounted, how):
    m = mounted
    (m.mnt / "d").mkdir()
    (m.mnt / "d" / "f").write_bytes(b"before\n")
    with open(m.mnt / "d" / "w", "wb") as writer:  # a write in progress across the bad requests
        writer.write(b"start\n")
        if how == "cli":
            bad = [
                (("lock", "add", m.mnt, "d/f", "--type", "advisory", "--owner", "o", "--range", f"0:{TOO_BIG}"),
                 "bad lock range"),
                (("lock", "add", m.mnt, "d/f", "--type", "mandatory", "--owner", "o", "--range", f"{TOO_BIG}:0"),
                 "bad lock range"),
                (("lock", "add", m.mnt, "d/f", "--type", "advisory", "--owner", "o", "--range", f"{1 << 62}:{1 << 62}"),
                 "past the largest file offset"),
                (("volume", "modify", m.mnt, "--size", "99999999999999999999T"), "too large"),
                (("volume", "modify", m.mnt, "--size", TOO_BIG), "too large"),
                (("volume", "modify", m.mnt, "--size", "9" * 400), "too large"),
                (("lun", "create", m.mnt, "lun0", "--size", "9" * 400, "--ostype", "linux"), "too large"),
                (("lun", "create", m.mnt, "lun0", "--size", "99999999999999999999T", "--ostype", "linux"), "too large"),
            ]
            for n, (args, match) in enumerate(bad):
                refused(*args, match=match)
                serving(m, writer, n)
        else:  # what a client other than the CLI may send: the volume checks the figures itself
            bad_raw = [
                ({"op": "lock_add", "args": {"path": "d/f", "type": "advisory", "owner": "o", "start": 0,
                                             "length": 1 << 63}}, "lock range length"),
                ({"op": "lock_add", "args": {"path": "d/f", "type": "advisory", "owner": "o", "start": 1 << 64}},
                 "lock range start"),
                ({"op": "lock_add", "args": {"path": "d/f", "type": "advisory", "owner": "o", "start": 1.5}},
                 "not a whole number"),
                ({"op": "volume_resize", "args": {"size": 1 << 70}}, "volume size"),
                ({"op": "volume_resize", "args": {"size": 1 << 63}}, "volume size"),
                ({"op": "volume_resize", "args": {"size": "64M"}}, "volume size"),
                ({"op": "lun_create", "args": {"path": "lun0", "size": 1 << 70, "ostype": "linux"}}, "LUN size"),
                ({"op": "lun_create", "args": {"path": "lun0", "size": 4096.5, "ostype": "linux"}}, "LUN size"),
            ]
            for n, (req, match) in enumerate(bad_raw):
                reply = ask(m.voldir, json.dumps(req).encode())
                assert reply["ok"] is False and match in reply["error"], reply
                assert "\n" not in reply["error"]
                serving(m, writer, n)
    assert (m.mnt / "d" / "f").read_bytes() == b"before\n"
    lines = (m.mnt / "d" / "w").read_bytes().splitlines()
    assert lines[0] == b"start" and lines[1:] == [b"line %d" % n for n in range(len(lines) - 1)]
    assert snapfs("lock", "list", m.mnt).stdout.splitlines()[1:] == []  # nothing half-made
    assert snapfs("lun", "list", m.mnt).stdout.splitlines()[1:] == []
    show = snapfs("volume", "show", m.mnt).stdout
    assert "64.0 MiB (67108864)" in show, show  # the size as it was
    r = snapfs("lock", "add", m.mnt, "d/f", "--type", "advisory", "--owner", "o", "--range", f"0:{(1 << 63) - 1}")
    assert f"range 0:{(1 << 63) - 1}" in r.stdout  # the largest range there is still is one


def test_a_request_that_fails_unexpectedly_is_answered_and_logged_and_the_mount_serves_on(mounted: Mounted):
    """An exception no command expects (here a request whose args are a list: the daemon's own
    act_as handling looks into them as a dict) is answered "internal error" in one line, its
    traceback goes to the mount log, and the daemon serves on (this channel, then others)."""
    m = mounted
    (m.mnt / "d").mkdir()
    with open(m.mnt / "d" / "w", "wb") as writer:
        writer.write(b"start\n")
        s = control.connect(m.voldir, timeout=20)
        assert s is not None
        with s, s.makefile("rwb") as f:
            f.write(b'{"op": "act_as", "args": [1]}\n{"op": "snapshot_list"}\n')
            f.flush()
            first, second = json.loads(f.readline()), json.loads(f.readline())
        assert first["ok"] is False and first["error"].startswith("internal error in act_as: AttributeError"), first
        assert second == {"ok": True, "result": []}  # the same channel answers the next request
        serving(m, writer, 0)
    log = (m.voldir / "mount.log").read_text()
    assert "control request 'act_as' failed" in log and "Traceback" in log and "AttributeError" in log
    assert (m.mnt / "d" / "w").read_bytes() == b"start\nline 0\n"


def test_a_stream_source_that_is_no_regular_file_is_refused_and_never_holds_up_the_mount(mounted: Mounted, tmp_path):
    """``stream write`` takes a regular file's bytes: a FIFO (which would wait for a writer), a
    device (/dev/zero would fill the volume) or a directory is refused in one line without being
    read, and meanwhile the mount answers.  The daemon reads a source on a worker thread, so a
    source on the mount itself (which the daemon must serve while it reads) works too."""
    m = mounted
    (m.mnt / "d").mkdir()
    (m.mnt / "d" / "f").write_bytes(b"the file\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    p = subprocess.Popen([SNAPFS, "stream", "write", str(m.mnt), "d/f", "s1", str(fifo)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the mount answers while the command runs (before: ls and df waited for a writer of the FIFO)
        assert "d" in subprocess.run(["ls", m.mnt], capture_output=True, text=True, timeout=10).stdout
        snapfs("df", m.mnt, timeout=10)
        out, errs = p.communicate(timeout=20)
    finally:
        if p.poll() is None:  # the old daemon waits in open(): a writer that comes and goes lets it go on
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            p.wait(timeout=20)
    assert p.returncode == 1 and "Traceback" not in errs, (p.returncode, errs)
    assert errs.strip() == f"snapfs: {fifo} is not a regular file: a stream takes a file's bytes", errs
    refused("stream", "write", m.mnt, "d/f", "s1", "/dev/zero", match="/dev/zero is not a regular file")
    refused("stream", "write", m.mnt, "d/f", "s1", tmp_path, match=f"{tmp_path} is not a regular file")
    refused("stream", "write", m.mnt, "d/f", "s1", tmp_path / "none", match="No such file or directory")
    assert snapfs("stream", "list", m.mnt, "d/f").stdout == ""  # nothing written
    # a source on the mount itself: the daemon serves its own reads of it
    (m.mnt / "src").write_bytes(b"x" * 300_000)
    r = snapfs("stream", "write", m.mnt, "d/f", "s2", m.mnt / "src", timeout=20)
    assert r.stdout.strip() == "s2: 300000 bytes, kept as data"
    assert snapfs("stream", "cat", m.mnt, "d/f", "s2").stdout == "x" * 300_000
    assert (m.mnt / "d" / "f").read_bytes() == b"the file\n"


ODD_NAMES = [
    ("a\nb", "may not contain '\\n'"), ("a\tb", "may not contain '\\t'"), ("a\rb", "may not contain '\\r'"),
    ("a\x7fb", "may not contain '\\x7f'"), ("a\x1bb", "may not contain '\\x1b'"), ("\u2028", "may not contain"),
    (" ", "may not start or end with a blank"), (" x", "may not start or end with a blank"),
    ("x ", "may not start or end with a blank"), ("\udcff", "is not valid UTF-8"), ("x" * 256, "longer than 255 bytes"),
]


def test_snapshot_holder_and_owner_names_are_one_line_of_visible_text(mounted: Mounted):
    """The rule qtree names follow (no control characters), and no blank ends, for the names of
    snapshots, their holders and the owners of locks and restrictions; the names in use stay good."""
    m = mounted
    (m.mnt / "f").write_bytes(b"x")
    snapfs("snapshot", "create", m.mnt, "before upgrade")
    for bad, match in ODD_NAMES + [("-x", "may not start with '-'")]:
        refused("snapshot", "create", m.mnt, "--", bad, match=match)
        refused("snapshot", "rename", m.mnt, "before upgrade", "--", bad, match=match)
    for bad, match in ODD_NAMES:
        refused("snapshot", "hold", m.mnt, "before upgrade", "--", bad, match=match)
        refused("lock", "add", m.mnt, "f", "--type", "advisory", "--owner", bad, match=match)
        refused("restrict", m.mnt, "f", "--owner", bad, match=match)
        refused("qtree", "create", m.mnt, "--", bad, match="qtree name")
    # names in use still work: the backup ones, dots, dashes inside, spaces and letters of any script inside
    snapfs("snapshot", "create", m.mnt)
    for good in ("v1.2-rc_3", "año 2024", "nightly.0"):
        snapfs("snapshot", "create", m.mnt, good)
    snapfs("snapshot", "hold", m.mnt, "nightly.0", "dump-42 (level 0)")
    rows = snapfs("snapshot", "list", m.mnt).stdout.splitlines()[1:]
    assert [r.split("  ")[0].strip() for r in rows] == [
        "before upgrade", "snapshot_for_backup.0", "v1.2-rc_3", "año 2024", "nightly.0"], rows
    assert rows[-1].endswith("dump-42 (level 0)")
    assert sorted(os.listdir(m.mnt / ".snapshot")) == sorted(
        ["before upgrade", "snapshot_for_backup.0", "v1.2-rc_3", "año 2024", "nightly.0"])
    snapfs("snapshot", "release", m.mnt, "nightly.0", "dump-42 (level 0)")
