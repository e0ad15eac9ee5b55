"""Restartable dumps (issue 14): a dump of a snapfs volume killed in stage IV (SIGTERM,
SIGKILL, at seeded points) leaves a context; ``pydump --restart ID -f NEXT`` writes the
next volume, and the volumes, restored in order by pyrestore and by the real restore,
give exactly what an uninterrupted dump of the same snapshot gives (its image, byte for
byte, but for the new volume's header).  ``--contexts`` shows them as ONTAP's
``restartable-backup show``; ``--delete-context`` gives the snapshot back; a restart is
refused, in one line, unless aborted in stage IV, its snapshot still there and file
history kept; contexts survive the snapfs daemon killed and the volume remounted."""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import answering, tmpfs_at
from fuse_fixtures import Mounted, mounted, snapfs, wait_released  # noqa: F401 (fixtures)

from dumptool.format import TP_BSIZE, walk_image
from dumptool.offsetmap import OffsetMap
from snapfs import client

pytestmark = pytest.mark.fuse

BIN = Path(sys.executable).parent
PYDUMP, PYRESTORE, RESTORE = str(BIN / "pydump"), str(BIN / "pyrestore"), "/sbin/restore"
NTREC = 10

#: The seed's ``restartable-backup show -context-id`` labels, in its order (ONTAP's docs).
SEED_FIELDS = ["Vserver", "Context Identifier", "Volume Name", "Is Cleanup Pending?", "Backup Engine Type",
               "Is Snapshot Copy Auto-created?", "Dump Path", "Incremental Backup Level ID", "Dump Name",
               "Context Last Updated Time", "Has Offset Map?", "Offset Verify", "Is Context Restartable?",
               "Is Context Busy?", "Restart Pass", "Status of Backup", "Snapshot Copy Name", "State of the Context"]


def env(state: Path, **more: str) -> dict[str, str]:
    return dict(os.environ, SNAPDUMP_STATE_DIR=str(state), **more)


def run(*cmd, ok: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([*map(str, cmd)], capture_output=True, stdin=subprocess.DEVNULL, timeout=120, **kw)
    if ok:
        assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r


def build(m: Path, seed: int = 7) -> None:
    """Directories of files: empty, small, a few records, many records, and holey."""
    rng = random.Random(seed)
    for i in range(36):
        d = m / f"d{i % 4}"
        d.mkdir(exist_ok=True)
        size = rng.choice([0, 90, 3000, 11000, 40000, 160000])
        (d / f"f{i:02d}").write_bytes(rng.randbytes(size))
    with open(m / "d0" / "holey", "wb") as f:
        f.write(b"head")
        f.seek(70000)
        f.write(b"tail")
    os.symlink("d1/f01", m / "link")
    os.setxattr(m / "d2" / "f02", "user.colour", b"green")


def snapshots(m: Path) -> dict[str, tuple[str, ...]]:
    with client.open_volume(m) as c:
        return {s.name: s.holders for s in c.snapshot_list()}


def contexts(state: Path) -> list[str]:
    folder = state / "contexts"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []


def restore_into(prefix: Path, out: Path, tmp: Path, *, real: bool) -> None:
    out.mkdir()
    scratch = tmp / f"rtmp-{time.monotonic_ns()}"
    scratch.mkdir()
    # the real restore reads a file volume in 32 KiB records unless -b says how long they are
    cmd = [RESTORE, "-r", "-y", "-b", str(NTREC), "-M", "-f", prefix] if real else \
        [PYRESTORE, "-r", "-y", "-M", "-f", prefix]
    run(*cmd, cwd=out, env=dict(os.environ, TMPDIR=str(scratch)))
    (out / "restoresymtable").unlink()


def tree_of(root: Path) -> dict[str, tuple]:
    """Every name under root: its type, mode, mtime, bytes (or target) and xattrs."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            if os.path.islink(p):
                what = os.readlink(p)
            elif p.is_dir():
                what = None
            else:
                what = p.read_bytes()
            xattrs = {} if os.path.islink(p) else {k: os.getxattr(p, k) for k in os.listxattr(p)}
            found[str(p.relative_to(root))] = (st.st_mode, st.st_mtime_ns // 1000, what, xattrs)
    return found


def killed_dump(m: Path, state: Path, image: Path, at: int, sig: str, interval: str = "0",
                snapshot: str | None = "ref") -> str:
    """``pydump --snapshot ref`` (``snapshot=None``: its own snapshot) to ``image``, sent
    ``sig`` after the ``at``-th inode of stage IV; the id of the context it left."""
    which = ("--snapshot", snapshot) if snapshot else ()
    r = run(PYDUMP, "-0", "-b", NTREC, *which, "-f", image, m, ok=False,
            env=env(state, SNAPDUMP_CHECKPOINT_SECONDS=interval, SNAPDUMP_TEST_SIGNAL_AT=f"{at}:{sig}"))
    expected = -9 if sig == "SIGKILL" else 3
    assert r.returncode == expected, r.stderr.decode(errors="replace")
    ids = contexts(state)
    assert len(ids) == 1, (ids, r.stderr)
    if sig != "SIGKILL":
        assert f"pydump --restart {ids[0]} -f NEXT-VOLUME".encode() in r.stderr
    return ids[0]


def restored_from_two_cartridges(shelf, nst0: str, first: str, second: str, out: Path) -> dict:
    """pyrestore -r from the drive: ``first`` loaded, ``second`` loaded when it asks for
    volume 2 (the same drive's path given); the tree it made."""
    out.mkdir()

    def swap(_n: int) -> None:
        shelf.unload(0)
        shelf.load(second, drive=0)

    shelf.unload(0)
    shelf.load(first, drive=0)
    answering([PYRESTORE, "-r", "-f", nst0], out, dict(os.environ),
              b"enter its path ('none' if there is none): ", nst0.encode() + b"\n", 1, before=swap)
    (out / "restoresymtable").unlink()
    return tree_of(out)


def test_seeded_kills_in_stage_iv_restarted_on_files_restore_as_an_uninterrupted_dump(mounted: Mounted,
                                                                                       tmp_path: Path):
    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "ref")
    whole = tmp_path / "whole.dump"
    run(PYDUMP, "-0", "-b", NTREC, "--snapshot", "ref", "-f", whole, m, env=env(tmp_path / "state0"))
    expected = tree_of(mounted.snap("ref"))
    reference = tmp_path / "ref-out"
    reference.mkdir()
    run(PYRESTORE, "-r", "-y", "-f", whole, cwd=reference)
    (reference / "restoresymtable").unlink()
    assert tree_of(reference) == expected
    image = whole.read_bytes()
    head = next(walk_image(image[:TP_BSIZE * 2])).header
    whole_map = _map_of(head, tmp_path / "state0")
    rng = random.Random(14)
    # Kills at seeded points of stage IV (40 files, 4 directories): SIGTERM, SIGKILL and SIGINT,
    # checkpoints after every inode or every 20 ms (then the kill falls between two).
    for k in range(6):
        sig = ("SIGTERM", "SIGKILL", "SIGINT")[k % 3]
        at = rng.randrange(1, 38)
        interval = rng.choice(["0", "0.02"])
        state, work = tmp_path / f"state{k}", tmp_path / f"run{k}"
        work.mkdir()
        cid = killed_dump(m, state, work / "vol001", at, sig, interval)
        holders = set(snapshots(m)["ref"])
        # held by the context (and, after SIGKILL, by the dead pydump, given back at restart)
        assert f"restartable-{cid}" in holders and all(h.startswith(("restartable-", "pydump-")) for h in holders)
        assert len(holders) == (2 if sig == "SIGKILL" else 1), holders
        if k % 3 == 2:  # the restart itself is killed later on, and restarted again
            done = json.loads((state / "contexts" / f"{cid}.json").read_text())["checkpoint"]["index"] - 5
            hook = {"SNAPDUMP_CHECKPOINT_SECONDS": "0", "SNAPDUMP_TEST_SIGNAL_AT": f"{min(done + 8, 37)}:SIGKILL"}
            r = run(PYDUMP, "--restart", cid, "-f", work / "vol002", ok=False, env=env(state, **hook))
            assert r.returncode == -9, r.stderr
            volume = json.loads((state / "contexts" / f"{cid}.json").read_text())["checkpoint"]["volume"]
            if volume == 1:  # killed before its first checkpoint: volume 2 is written again
                (work / "vol002").unlink()
        volume = json.loads((state / "contexts" / f"{cid}.json").read_text())["checkpoint"]["volume"]
        r = run(PYDUMP, "--restart", cid, "-f", work / f"vol{volume + 1:03d}", env=env(state))
        assert f"restarting context {cid}: volume {volume + 1}".encode() in r.stderr
        assert contexts(state) == [] and snapshots(m)["ref"] == ()  # done: the context and its hold gone
        # one offset map, the whole image's: each file once, on the volume it starts in
        assert _map_of(head, state, volumes=volume + 1) == whole_map, (k, sig, at)
        volumes = [p.read_bytes() for p in sorted(work.glob("vol0*"))]
        assert len(volumes) == volume + 1
        assert all(len(v) % (NTREC * 1024) == 0 for v in volumes[:-1]) and len(volumes[0]) < len(image)
        # the stream is the uninterrupted one, cut once or twice more (its TS_END record aside)
        joined = volumes[0] + b"".join(v[1024:] for v in volumes[1:])
        assert joined[:len(image) - NTREC * 1024] == image[:len(image) - NTREC * 1024], (k, sig, at)
        restore_into(work / "vol", work / "py", tmp_path, real=False)
        assert tree_of(work / "py") == expected, (k, sig, at)
        if k in (1, 2):  # a kill -9, and a SIGINT whose restart is killed too: three volumes
            restore_into(work / "vol", work / "real", tmp_path, real=True)
            assert tree_of(work / "real") == expected, (k, sig, at)


def _map_of(head, state: Path, volumes: int = 1) -> dict[int, tuple[bytes, int]]:
    """The offset map pydump kept in ``state`` for the image of volume header ``head``:
    each file's path and size, checked whole (``volumes`` volumes, every file once)."""
    omap = OffsetMap.find(head, state / "history")
    assert omap is not None, sorted(p.name for p in (state / "history").iterdir())
    try:
        omap.check(head)
        entries = list(omap.entries())
        assert omap.end["files"] == len(entries) and omap.end["volumes"] == volumes
        found = {e.ino: (e.path, e.size) for e in entries}
        assert len(found) == len(entries)
        return found
    finally:
        omap.close()


def test_contexts_show_the_seed_fields_and_delete_gives_the_snapshot_back(mounted: Mounted, tmp_path: Path):
    m = mounted.mnt
    build(m)
    state = tmp_path / "state"
    cid = killed_dump(m, state, tmp_path / "vol001", 5, "SIGTERM", snapshot=None)
    held = snapshots(m)
    [name] = held
    assert name.startswith("snapshot_for_backup.") and held[name] == (f"restartable-{cid}",)
    # the snapshot is locked: snapfs refuses to delete it
    assert snapfs("snapshot", "delete", m, name, check=False).returncode != 0
    listing = run(PYDUMP, "--contexts", env=env(state)).stdout.decode().splitlines()
    assert listing[0].split() == ["Vserver", "Context", "Identifier", "Is", "Cleanup", "Pending?"]
    assert set(listing[1]) == {"-", " "}
    assert listing[2].split() == [os.uname().nodename, cid, "false"] and len(listing) == 3
    shown = run(PYDUMP, "--contexts", cid, env=env(state)).stdout.decode().splitlines()
    fields = dict(line.split(": ", 1) for line in shown)
    assert [label.strip() for label in fields] == SEED_FIELDS
    assert all(len(label) == 30 for label in fields)  # right-aligned, as the seed's
    values = {label.strip(): value for label, value in fields.items()}
    stored = json.loads((state / "contexts" / f"{cid}.json").read_text())
    assert values == {
        "Vserver": os.uname().nodename, "Context Identifier": cid, "Volume Name": f"/{os.uname().nodename}/testvol",
        "Is Cleanup Pending?": "false", "Backup Engine Type": "dump", "Is Snapshot Copy Auto-created?": "true",
        "Dump Path": str(m), "Incremental Backup Level ID": "0", "Dump Name": f"/{os.uname().nodename}/testvol",
        "Context Last Updated Time": str(stored["updated"]), "Has Offset Map?": "true", "Offset Verify": "true",
        "Is Context Restartable?": "true", "Is Context Busy?": "false", "Restart Pass": "4",
        "Status of Backup": "2", "Snapshot Copy Name": name, "State of the Context": "7"}
    assert abs(int(values["Context Last Updated Time"]) - time.time()) < 120
    # what the context keeps: a uuid, the volume, path, level and base, the last file and offset written
    assert str(uuid.UUID(cid)) == cid and stored["volume_name"] == "testvol" and stored["dump_path"] == str(m)
    assert (stored["level"], stored["base_date"], stored["snapshot"]) == (0, 0, name)
    cp = stored["checkpoint"]
    assert cp["medium"] == str(tmp_path / "vol001") and not cp["is_tape"] and cp["ino"] > 0
    assert cp["medium_block"] >= cp["resume_block"] and cp["medium_address"] == cp["medium_block"] * 1024
    offsets = (state / "contexts" / f"{cid}.fh").read_text().split("\n")
    assert len([line for line in offsets if line]) >= 5
    # another pydump restarting or deleting it (its lock held): refused, nothing changed
    with open(state / "contexts" / f".{cid}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        for args in (["--delete-context", cid], ["--restart", cid, "-f", str(tmp_path / "vol002")]):
            r = run(PYDUMP, *args, ok=False, env=env(state))
            assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and b"is busy" in r.stderr, r.stderr
    assert contexts(state) == [cid] and not (tmp_path / "vol002").exists() and snapshots(m)[name]
    r = run(PYDUMP, "--delete-context", cid, env=env(state))
    assert f"deleted context {cid}".encode() in r.stderr
    assert snapshots(m) == {} and contexts(state) == []
    r = run(PYDUMP, "--contexts", env=env(state))
    assert r.stdout == b"There are no entries matching your query.\n"
    r = run(PYDUMP, "--contexts", cid, ok=False, env=env(state))
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and b"no restartable context" in r.stderr


def test_a_context_whose_volume_path_is_gone_is_deleted_naming_the_snapshot_left(mounted: Mounted,
                                                                                  tmp_path: Path):
    """A volume gone for good (its path too) would keep its contexts forever, and every pydump would
    warn that it cannot clean them up: --delete-context deletes such a context and names what it could
    not give back; an unmounted volume (its mount point still there) is refused as before."""
    m = mounted.mnt
    build(m)
    state = tmp_path / "state"
    cid = killed_dump(m, state, tmp_path / "vol001", 9, "SIGTERM", snapshot=None)
    (name,) = snapshots(m)
    snapfs("unmount", m)
    r = run(PYDUMP, "--delete-context", cid, ok=False, env=env(state))
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and b"cannot give back" in r.stderr, r.stderr
    assert contexts(state) == [cid]
    elsewhere = tmp_path / "moved-mnt"
    m.rename(elsewhere)
    r = run(PYDUMP, "--delete-context", cid, env=env(state))
    assert f"{m} no longer exists, so snapshot {name} was not given back; if the volume comes back, release " \
        f"its hold restartable-{cid} and delete it there with snapfs snapshot".encode() in r.stderr, r.stderr
    assert r.stderr.endswith(f"  DUMP: deleted context {cid}\n".encode()), r.stderr  # not "given back"
    assert contexts(state) == []
    snapfs("mount", mounted.voldir, elsewhere, "-o", "allow_other")
    try:
        assert f"restartable-{cid}" in snapshots(elsewhere)[name]  # left as said, nothing else touched
        snapfs("snapshot", "release", elsewhere, name, f"restartable-{cid}")
        snapfs("snapshot", "delete", elsewhere, name)
        assert name not in snapshots(elsewhere)
    finally:
        snapfs("unmount", elsewhere)
        elsewhere.rename(m)
        snapfs("mount", mounted.voldir, m, "-o", "allow_other")


def test_restart_refused_naming_the_condition_that_fails(mounted: Mounted, tmp_path: Path):
    m = mounted.mnt
    build(m)

    def refused(state: Path, cid: str, words: bytes) -> None:
        r = run(PYDUMP, "--restart", cid, "-f", tmp_path / f"next-{cid}", ok=False, env=env(state))
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
        assert r.stderr.startswith(b"  DUMP: cannot restart: ") and words in r.stderr, r.stderr
        assert not (tmp_path / f"next-{cid}").exists()

    # 1. killed at the start of stage IV, before its first checkpoint: not aborted in stage IV
    s1 = tmp_path / "s1"
    r = run(PYDUMP, "-0", "-f", tmp_path / "a", m, ok=False,
            env=env(s1, SNAPDUMP_CHECKPOINT_SECONDS="0", SNAPDUMP_TEST_SIGNAL_AT="0:SIGKILL"))
    assert r.returncode == -9
    [c1] = contexts(s1)
    shown = run(PYDUMP, "--contexts", c1, env=env(s1)).stdout
    assert b"Is Context Restartable?: false" in shown and b"State of the Context: 1" in shown
    refused(s1, c1, b"was not aborted in stage IV")
    # the next dump's cleanup gives that snapshot back (released and deleted)
    run(PYDUMP, "-0", "-f", tmp_path / "b", m, env=env(s1))
    assert contexts(s1) == [] and snapshots(m) == {}

    # 2. its snapshot gone (the hold released and the snapshot deleted behind its back)
    s2 = tmp_path / "s2"
    r = run(PYDUMP, "-0", "-f", tmp_path / "c", m, ok=False,
            env=env(s2, SNAPDUMP_CHECKPOINT_SECONDS="0", SNAPDUMP_TEST_SIGNAL_AT="3:SIGTERM"))
    [c2] = contexts(s2)
    [name] = snapshots(m)
    snapfs("snapshot", "release", m, name, f"restartable-{c2}")
    snapfs("snapshot", "delete", m, name)
    refused(s2, c2, f"snapshot {name} of {m}, which context {c2} locked, is gone".encode())
    assert b"Is Context Restartable?: false" in run(PYDUMP, "--contexts", c2, env=env(s2)).stdout

    # 3. no file history kept
    s3 = tmp_path / "s3"
    r = run(PYDUMP, "-0", "--no-file-history", "-f", tmp_path / "d", m, ok=False,
            env=env(s3, SNAPDUMP_CHECKPOINT_SECONDS="0", SNAPDUMP_TEST_SIGNAL_AT="3:SIGTERM"))
    assert r.returncode == 3
    [c3] = contexts(s3)
    assert b"Has Offset Map?: false" in run(PYDUMP, "--contexts", c3, env=env(s3)).stdout
    refused(s3, c3, b"kept no file history")
    run(PYDUMP, "--delete-context", c3, env=env(s3))
    assert snapshots(m) == {}

    # and a dump aborted before stage IV leaves no context, its snapshot given back
    s4 = tmp_path / "s4"
    r = run(PYDUMP, "-0", "-f", tmp_path / "nodir" / "e", m, ok=False, env=env(s4))
    assert r.returncode == 1 and contexts(s4) == [] and snapshots(m) == {}


def test_a_context_survives_the_daemon_killed_and_the_volume_remounted(mounted: Mounted, tmp_path: Path):
    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "ref")
    state = tmp_path / "state"
    cid = killed_dump(m, state, tmp_path / "vol001", 17, "SIGKILL")
    with client.open_volume(m) as c:
        pid = c.info().pid
    os.kill(pid, signal.SIGKILL)  # the "reboot": the daemon dies, the mount is gone
    subprocess.run(["fusermount3", "-u", "-z", str(m)], capture_output=True)
    assert wait_released(mounted.voldir)
    r = run(PYDUMP, "--restart", cid, "-f", tmp_path / "vol002", ok=False, env=env(state))
    assert r.returncode == 1 and r.stderr == f"  DUMP: cannot restart: {m} is not a mounted snapfs volume: mount it " \
        "again, then restart\n".encode(), r.stderr
    snapfs("mount", mounted.voldir, m, "-o", "allow_other")
    assert set(snapshots(m)["ref"]) == {f"pydump-{_dead_pid(state, cid)}", f"restartable-{cid}"}
    assert cid in run(PYDUMP, "--contexts", env=env(state)).stdout.decode()
    run(PYDUMP, "--restart", cid, "-f", tmp_path / "vol002", env=env(state))
    assert contexts(state) == [] and snapshots(m)["ref"] == ()
    restore_into(tmp_path / "vol", tmp_path / "out", tmp_path, real=False)
    assert tree_of(tmp_path / "out") == tree_of(mounted.snap("ref"))


def _dead_pid(state: Path, cid: str) -> int:
    return json.loads((state / "contexts" / f"{cid}.json").read_text())["pid"]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_restart_on_the_same_cartridge_after_the_interrupted_tape_file(mounted: Mounted, tmp_path: Path,
                                                                       nst0: str, sig: str):
    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "ref")
    expected = tree_of(mounted.snap("ref"))
    state = tmp_path / "state"
    cid = killed_dump(m, state, Path(nst0), 23 if sig == "SIGTERM" else 29, sig, "0.01")
    r = run(PYDUMP, "--restart", cid, "-f", nst0, env=env(state))
    assert b"(a filemark written after it); volume 2 follows it" in r.stderr, r.stderr
    assert contexts(state) == [] and snapshots(m)["ref"] == ()
    run(BIN / "pymt", "-f", nst0, "rewind")
    out = tmp_path / "py"
    out.mkdir()
    answering([PYRESTORE, "-r", "-f", nst0], out, dict(os.environ),
              b"enter its path ('none' if there is none): ", nst0.encode() + b"\n", 1)
    (out / "restoresymtable").unlink()
    assert tree_of(out) == expected
    # the restart's offset map is the whole image's: -x seeks to a file of volume 2 (the next tape file)
    [kept] = (state / "history").glob("*.block.fh")
    omap = OffsetMap(kept)
    entries = list(omap.entries())
    omap.close()
    assert len(entries) == len({e.ino for e in entries}) == 38  # build(): 36 files, holey, link
    [last] = [e for e in entries if e.path == b"./d3/f35"]
    assert last.volume == 2, last
    run(BIN / "pymt", "-f", nst0, "rewind")
    direct = tmp_path / "x"
    direct.mkdir()
    said = answering([PYRESTORE, "-x", "-v", "-f", nst0, "d3/f35"], direct, env(state),
                     b"enter its path ('none' if there is none): ", nst0.encode() + b"\n", 1,
                     # the operator makes volume 2 ready: the cartridge's next tape file
                     lambda _n: (run(BIN / "pymt", "-f", nst0, "rewind"), run(BIN / "pymt", "-f", nst0, "fsf", "1")))
    total, front = _records_read(said)
    assert "of volume 2" in said and total - front <= 3, said  # its header, the file's record(s)
    assert (direct / "d3" / "f35").read_bytes() == (mounted.snap("ref") / "d3" / "f35").read_bytes()
    # the real restore through rmt, told the same drive (its default) for volume 2
    run(BIN / "pymt", "-f", nst0, "rewind")
    rsh = tmp_path / "fake-rsh"
    rsh.write_text(f'#!/bin/sh\nshift\nif [ "$1" = "-l" ]; then shift 2; fi\nexec "{BIN / "pyrmt"}"\n')
    rsh.chmod(0o755)
    real = tmp_path / "real"
    real.mkdir()
    scratch = tmp_path / "rtmp"
    scratch.mkdir()
    answering([RESTORE, "-r", "-y", "-f", f"localhost:{nst0}"], real,
              dict(os.environ, RSH=str(rsh), RMT=str(BIN / "pyrmt"), TMPDIR=str(scratch)),
              b"otherwise enter tape name", b"\n", 1)
    (real / "restoresymtable").unlink()
    assert tree_of(real) == expected


def test_restart_on_a_new_cartridge_the_interrupted_one_read_first(mounted: Mounted, tmp_path: Path, shelf,
                                                                   nst0: str):
    """Killed (kill -9: the tape file has records after the checkpoint and no filemark),
    restarted on a blank cartridge: restore skips the records the new volume repeats."""
    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "ref")
    expected = tree_of(mounted.snap("ref"))
    state = tmp_path / "state"
    cid = killed_dump(m, state, Path(nst0), 30, "SIGKILL", "0.01")
    # the drive, opened again, ends the killed writer's tape file (as st's close would have)
    run(BIN / "pymt", "-f", nst0, "status")
    shelf.unload(0)
    shelf.new_cartridge("NEXT02", capacity=4 * 1024 * 1024)
    shelf.load("NEXT02", drive=0)
    r = run(PYDUMP, "--restart", cid, "-f", nst0, env=env(state))
    assert b"filemark" not in r.stderr
    for reader in ("pyrestore", "restore"):
        shelf.unload(0)
        shelf.load("TEST01", drive=0)
        out = tmp_path / reader
        out.mkdir()

        def swap(_n: int) -> None:
            shelf.unload(0)
            shelf.load("NEXT02", drive=0)

        if reader == "pyrestore":
            answering([PYRESTORE, "-r", "-f", nst0], out, dict(os.environ),
                      b"enter its path ('none' if there is none): ", nst0.encode() + b"\n", 1, before=swap)
        else:
            rsh = tmp_path / "fake-rsh"
            rsh.write_text(f'#!/bin/sh\nshift\nif [ "$1" = "-l" ]; then shift 2; fi\nexec "{BIN / "pyrmt"}"\n')
            rsh.chmod(0o755)
            scratch = tmp_path / "rtmp"
            scratch.mkdir()
            answering([RESTORE, "-r", "-y", "-f", f"localhost:{nst0}"], out,
                      dict(os.environ, RSH=str(rsh), RMT=str(BIN / "pyrmt"), TMPDIR=str(scratch)),
                      b"otherwise enter tape name", b"\n", 1, before=swap)
        (out / "restoresymtable").unlink()
        assert tree_of(out) == expected, reader


def test_end_of_tape_with_no_next_cartridge_leaves_a_context_restarted_on_a_new_one(mounted: Mounted,
                                                                                    tmp_path: Path):
    from tapelib import Shelf

    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "ref")
    expected = tree_of(mounted.snap("ref"))
    shelf = Shelf.create(tmp_path / "shelf", drives=1, slots=4)
    shelf.new_cartridge("SMALL1", capacity=700 * 1024)
    shelf.load("SMALL1", drive=0)
    nst0 = str(shelf.device_path(0, rewind=False))
    state = tmp_path / "state"
    r = run(PYDUMP, "-0", "-b", NTREC, "--no-prompt", "--snapshot", "ref", "-f", nst0, m, ok=False,
            env=env(state, SNAPDUMP_CHECKPOINT_SECONDS="0.01"))
    assert r.returncode == 1 and b"the dump can be restarted" in r.stderr, r.stderr
    [cid] = contexts(state)
    shelf.new_cartridge("NEXT02", capacity=4 * 1024 * 1024)
    shelf.load("NEXT02", drive=0)
    run(PYDUMP, "--restart", cid, "-f", nst0, env=env(state))
    assert contexts(state) == [] and snapshots(m)["ref"] == ()
    assert restored_from_two_cartridges(shelf, nst0, "SMALL1", "NEXT02", tmp_path / "py") == expected


def test_a_restarted_dump_deletes_the_snapshot_it_made_when_done(mounted: Mounted, tmp_path: Path):
    m = mounted.mnt
    build(m)
    state = tmp_path / "state"
    r = run(PYDUMP, "-0", "-u", "-D", tmp_path / "dumpdates", "-f", tmp_path / "vol001", m, ok=False,
            env=env(state, SNAPDUMP_CHECKPOINT_SECONDS="0", SNAPDUMP_TEST_SIGNAL_AT="7:SIGKILL"))
    assert r.returncode == -9
    [cid] = contexts(state)
    [name] = snapshots(m)
    assert not (tmp_path / "dumpdates").exists()
    date0 = json.loads((state / "contexts" / f"{cid}.json").read_text())["date"]
    run(PYDUMP, "--restart", cid, "-f", tmp_path / "vol002", env=env(state))
    assert snapshots(m) == {} and contexts(state) == []  # released (the dead pydump's hold too) and deleted
    assert (tmp_path / "dumpdates").read_text().split()[:2] == [str(m), "0"]  # -u kept: recorded when done
    restore_into(tmp_path / "vol", tmp_path / "out", tmp_path, real=False)
    assert tree_of(tmp_path / "out") == tree_of(m)
    # an incremental's context keeps its level and its base (the level 0's date)
    time.sleep(1.1)
    for f in ("d1/f01", "d2/f02", "d3/f03"):
        (m / f).write_bytes(b"changed for the level 1")
    r = run(PYDUMP, "-1", "-u", "-D", tmp_path / "dumpdates", "-f", tmp_path / "inc001", m, ok=False,
            env=env(state, SNAPDUMP_CHECKPOINT_SECONDS="0", SNAPDUMP_TEST_SIGNAL_AT="1:SIGTERM"))
    assert r.returncode == 3, r.stderr
    [c1] = contexts(state)
    stored = json.loads((state / "contexts" / f"{c1}.json").read_text())
    assert (stored["level"], stored["base_date"]) == (1, date0) and date0 > 0
    assert b"Incremental Backup Level ID: 1" in run(PYDUMP, "--contexts", c1, env=env(state)).stdout
    run(PYDUMP, "--restart", c1, "-f", tmp_path / "inc002", env=env(state))
    assert contexts(state) == [] and snapshots(m) == {}
    assert (tmp_path / "dumpdates").read_text().split("\n")[1].split()[:2] == [str(m), "1"]


def test_seeded_kills_on_tape_restarted_on_the_same_cartridge(mounted: Mounted, tmp_path: Path, nst0: str):
    """The seeded loop on a loopback tape: SIGTERM, SIGKILL and SIGINT at seeded points of
    stage IV, each restarted on the same cartridge after the interrupted tape file."""
    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "ref")
    expected = tree_of(mounted.snap("ref"))
    rng = random.Random(1414)
    for k, sig in enumerate(("SIGTERM", "SIGKILL", "SIGINT")):
        at = rng.randrange(2, 38)
        run(BIN / "pymt", "-f", nst0, "rewind")
        state = tmp_path / f"state{k}"
        cid = killed_dump(m, state, Path(nst0), at, sig, rng.choice(["0", "0.01"]))
        cp = json.loads((state / "contexts" / f"{cid}.json").read_text())["checkpoint"]  # the tape position
        assert (cp["is_tape"], cp["tape_file"], cp["barcode"], cp["volume"]) == (True, 0, "TEST01", 1), cp
        assert cp["medium_address"] > 0 and cp["ino"] > 0
        r = run(PYDUMP, "--restart", cid, "-f", nst0, env=env(state))
        assert b"volume 2 follows it" in r.stderr, (sig, at, r.stderr)
        assert contexts(state) == [] and snapshots(m)["ref"] == ()
        run(BIN / "pymt", "-f", nst0, "rewind")
        out = tmp_path / f"py{k}"
        out.mkdir()
        answering([PYRESTORE, "-r", "-f", nst0], out, dict(os.environ),
                  b"enter its path ('none' if there is none): ", nst0.encode() + b"\n", 1)
        (out / "restoresymtable").unlink()
        assert tree_of(out) == expected, (sig, at)


def test_a_tape_write_error_leaves_a_context_restarted_on_a_new_cartridge(mounted: Mounted, tmp_path: Path):
    """The cartridge's file fills the file system it lies on: the drive's write fails in
    stage IV (not an end of medium); the context is restartable on another cartridge."""
    from tapelib import Shelf

    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "ref")
    expected = tree_of(mounted.snap("ref"))
    state = tmp_path / "state"
    with tmpfs_at(tmp_path / "small", "size=400k") as small:
        shelf = Shelf.create(small / "shelf", drives=1, slots=4)
        shelf.new_cartridge("FULL01", capacity=4 * 1024 * 1024)
        shelf.load("FULL01", drive=0)
        nst0 = str(shelf.device_path(0, rewind=False))
        r = run(PYDUMP, "-0", "-b", NTREC, "--no-prompt", "--snapshot", "ref", "-f", nst0, m, ok=False,
                env=env(state, SNAPDUMP_CHECKPOINT_SECONDS="0.01"))
        assert r.returncode == 1 and b"the dump can be restarted" in r.stderr, r.stderr
        assert r.stderr.splitlines()[-1] == b"  DUMP: No space left on device", r.stderr
        [cid] = contexts(state)
        shown = run(PYDUMP, "--contexts", cid, env=env(state)).stdout
        assert b"Is Context Restartable?: true" in shown and b"State of the Context: 7" in shown
        assert set(snapshots(m)["ref"]) == {f"restartable-{cid}"}
        subprocess.run(["mount", "-o", "remount,size=32m", str(small)], check=True)
        shelf.new_cartridge("NEXT02", capacity=4 * 1024 * 1024)
        shelf.unload(0)
        shelf.load("NEXT02", drive=0)
        run(PYDUMP, "--restart", cid, "-f", nst0, env=env(state))
        assert contexts(state) == [] and snapshots(m)["ref"] == ()
        assert restored_from_two_cartridges(shelf, nst0, "FULL01", "NEXT02", tmp_path / "py") == expected


def test_is_cleanup_pending_while_a_delete_runs_and_a_killed_delete_is_finished_later(mounted: Mounted,
                                                                                      tmp_path: Path):
    """The volume's daemon stopped, a delete waits to give the snapshot back: meanwhile
    the context shows Is Cleanup Pending? true; killed there, the context stays so (not
    restartable) and the next dump's cleanup pass finishes the delete."""
    m = mounted.mnt
    build(m)
    state = tmp_path / "state"
    cid = killed_dump(m, state, tmp_path / "vol001", 5, "SIGTERM", snapshot=None)
    [name] = snapshots(m)
    node = os.uname().nodename

    def listed() -> list[str]:
        return run(PYDUMP, "--contexts", env=env(state)).stdout.decode().splitlines()[2].split()

    assert listed() == [node, cid, "false"]
    with client.open_volume(m) as c:
        daemon = c.info().pid
    os.kill(daemon, signal.SIGSTOP)
    deleting = subprocess.Popen([PYDUMP, "--delete-context", cid], env=env(state), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while listed() != [node, cid, "true"]:
            assert time.monotonic() < deadline and deleting.poll() is None
            time.sleep(0.05)
        time.sleep(0.3)
        assert deleting.poll() is None  # still giving the snapshot back
        deleting.kill()
        deleting.wait()
    finally:
        os.kill(daemon, signal.SIGCONT)
        if deleting.poll() is None:
            deleting.kill()
            deleting.wait()
        deleting.stderr.close()
    assert listed() == [node, cid, "true"] and name in snapshots(m)
    shown = run(PYDUMP, "--contexts", cid, env=env(state)).stdout
    assert b"Is Cleanup Pending?: true" in shown and b"State of the Context: 8" in shown
    r = run(PYDUMP, "--restart", cid, "-f", tmp_path / "vol002", ok=False, env=env(state))
    assert r.returncode == 1 and r.stderr == f"  DUMP: cannot restart: context {cid} is being deleted " \
        "(Is Cleanup Pending?: true)\n".encode(), r.stderr
    r = run(PYDUMP, "-0", "-f", tmp_path / "next", m, env=env(state))
    assert f"deleted context {cid}".encode() in r.stderr
    assert contexts(state) == [] and snapshots(m) == {}


def test_kill_9_at_seeded_instants_leaves_no_context_or_a_usable_one(mounted: Mounted, tmp_path: Path):
    """kill -9 at seeded wall-clock instants of a dump (not at inode boundaries): no
    context, a context not yet checkpointed (not restartable; deleted and its snapshot
    given back), or one whose restart restores exactly the snapshot."""
    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "ref")
    expected = tree_of(mounted.snap("ref"))
    started = time.monotonic()
    run(PYDUMP, "-0", "-b", NTREC, "--snapshot", "ref", "-f", tmp_path / "whole", m,
        env=env(tmp_path / "s", SNAPDUMP_CHECKPOINT_SECONDS="0"))
    took = time.monotonic() - started
    rng = random.Random(9)
    seen = []
    for k in range(5):
        state, work = tmp_path / f"state{k}", tmp_path / f"run{k}"
        work.mkdir()
        p = subprocess.Popen([PYDUMP, "-0", "-b", str(NTREC), "--snapshot", "ref", "-f", str(work / "vol001"),
                              str(m)], env=env(state, SNAPDUMP_CHECKPOINT_SECONDS="0"), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if k % 2:  # anywhere in the dump's run, by the clock of an undisturbed one
            time.sleep(rng.uniform(0.2, 1.0) * took)
        else:  # anywhere in stage IV: from its context's first write on (the clock alone can miss
            # stage IV on a busy machine, where the mapping passes take longer)
            deadline = time.monotonic() + 60
            while p.poll() is None and not list((state / "contexts").glob("*.json")) \
                    and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.5) * took)
        p.kill()
        p.wait()
        ids = contexts(state)
        if p.returncode == 0 or not ids:
            seen.append("done" if p.returncode == 0 else "none")
            continue
        [cid] = ids
        shown = run(PYDUMP, "--contexts", cid, env=env(state)).stdout
        if b"Is Context Restartable?: true" not in shown:
            assert b"State of the Context: 1" in shown, shown
            run(PYDUMP, "--delete-context", cid, env=env(state))
            seen.append("not checkpointed")
            continue
        volume = json.loads((state / "contexts" / f"{cid}.json").read_text())["checkpoint"]["volume"]
        run(PYDUMP, "--restart", cid, "-f", work / f"vol{volume + 1:03d}", env=env(state))
        restore_into(work / "vol", work / "py", tmp_path, real=False)
        assert tree_of(work / "py") == expected, k
        seen.append("restarted")
    assert "restarted" in seen, seen
    # the killed dumps' holds are given back by the next dump's start
    run(PYDUMP, "-0", "--snapshot", "ref", "-f", tmp_path / "last", m, env=env(tmp_path / "s"))
    assert snapshots(m)["ref"] == ()


def test_a_context_is_restarted_after_its_volume_moved(mounted: Mounted, tmp_path: Path):
    """The context names the mount, and the held snapshot moves with the volume's folder."""
    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "ref")
    expected = tree_of(mounted.snap("ref"))
    state = tmp_path / "state"
    cid = killed_dump(m, state, tmp_path / "vol001", 12, "SIGTERM")
    (tmp_path / "aggr2").mkdir()
    snapfs("volume", "move", m, "--to", tmp_path / "aggr2" / "vol")
    mounted.voldir = tmp_path / "aggr2" / "vol"
    assert snapshots(m)["ref"] == (f"restartable-{cid}",)
    run(PYDUMP, "--restart", cid, "-f", tmp_path / "vol002", env=env(state))
    assert contexts(state) == [] and snapshots(m)["ref"] == ()
    restore_into(tmp_path / "vol", tmp_path / "out", tmp_path, real=False)
    assert tree_of(tmp_path / "out") == expected


def _records_read(stdout: str) -> tuple[int, int]:
    """``(records read, of them for the front)`` from ``pyrestore -x -v``'s summary line."""
    import re

    found = re.search(r"^(\d+) records read \((\d+) for the volume header", stdout, re.M)
    assert found, f"pyrestore read the image through (no file history found):\n{stdout}"
    return int(found.group(1)), int(found.group(2))


def test_a_restarted_dump_keeps_one_whole_file_history_and_x_goes_straight_to_files_past_the_cut(
        mounted: Mounted, tmp_path: Path):
    """The offset map of a dump killed in stage IV and restarted is the whole image's: the
    lines written before the cut (kept with the context) and those the restart writes, one
    map found by ``pyrestore -x`` itself, which seeks to a file on either side of the cut."""
    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "ref")
    whole = tmp_path / "whole.dump"
    run(PYDUMP, "-0", "-b", NTREC, "--snapshot", "ref", "-f", whole, m, env=env(tmp_path / "state0"))
    head = next(walk_image(whole.read_bytes()[:TP_BSIZE * 2])).header
    reference = OffsetMap.find(head, tmp_path / "state0" / "history")
    assert reference is not None
    expected = {e.ino: (e.path, e.size) for e in reference.entries()}
    reference.close()
    state, work = tmp_path / "state", tmp_path / "run"
    work.mkdir()
    cid = killed_dump(m, state, work / "vol001", 20, "SIGKILL")
    cp = json.loads((state / "contexts" / f"{cid}.json").read_text())["checkpoint"]
    run(PYDUMP, "--restart", cid, "-f", work / "vol002", env=env(state))
    omap = OffsetMap.find(head, state / "history")
    assert omap is not None, sorted(p.name for p in (state / "history").iterdir())
    omap.check(head)
    entries = list(omap.entries())
    # one line per file, none twice, every file of the uninterrupted dump's map
    assert {e.ino: (e.path, e.size) for e in entries} == expected
    assert len(entries) == len(expected) == omap.end["files"] and omap.end["volumes"] == 2
    before = [e for e in entries if e.block < cp["resume_block"]]
    after = [e for e in entries if e.block > cp["medium_block"]]
    assert before and after and all(e.volume == 1 for e in before) and all(e.volume == 2 for e in after)
    truth = mounted.snap("ref")
    after = [e for e in after if e.path.startswith(b"./d") and e.size]  # files with data
    before = [e for e in before if e.path.startswith(b"./d") and e.size]
    for which, e in (("after", after[-1]), ("before", before[-1])):
        name = os.fsdecode(e.path)
        out = tmp_path / f"x-{which}"
        out.mkdir()
        done = run(PYRESTORE, "-x", "-v", "-M", "-y", "-f", work / "vol", name, cwd=out, env=env(state))
        total, front = _records_read(done.stdout.decode())
        assert f"of volume {e.volume}" in done.stdout.decode(), which
        assert total - front <= 3 + e.size // (NTREC * 1024), (which, done.stdout.decode())
        assert (out / name).read_bytes() == (truth / name).read_bytes(), which
    # and nothing left behind: no part file (the killed writer's neither), no context file
    assert not list((state / "history").glob("*.part")) and not list((state / "contexts").glob(f"{cid}*"))


def test_a_restarted_incremental_takes_the_files_moved_in_as_the_interrupted_one_did(mounted: Mounted,
                                                                                     tmp_path: Path):
    # files moved into the dumped path with times older than the base are taken whole (their
    # chain never held them): the restart must map the same inodes, or Offset Verify refuses it
    m = mounted.mnt
    (m / "home").mkdir()
    (m / "home" / "kept").write_bytes(b"kept\n")
    (m / "outside" / "proj").mkdir(parents=True)
    for i in range(12):
        (m / "outside" / "proj" / f"f{i:02d}").write_bytes(os.urandom(20000))
    state = tmp_path / "state"
    time.sleep(1.1)
    dates = ("-D", tmp_path / "dumpdates")
    run(PYDUMP, "-0", "-u", *dates, "-b", NTREC, "-f", tmp_path / "l0", m / "home", env=env(state))
    time.sleep(1.1)
    (m / "outside" / "proj").rename(m / "home" / "proj")
    r = run(PYDUMP, "-1", "-u", *dates, "-b", NTREC, "-f", tmp_path / "l1.001", m / "home", ok=False,
            env=env(state, SNAPDUMP_CHECKPOINT_SECONDS="0", SNAPDUMP_TEST_SIGNAL_AT="6:SIGTERM"))
    assert r.returncode == 3, r.stderr.decode(errors="replace")
    assert b"12 inodes new to this chain" in r.stderr, r.stderr  # (proj itself changed: renamed)
    [cid] = contexts(state)
    run(PYDUMP, "--restart", cid, "-f", tmp_path / "l1.002", env=env(state))
    out = tmp_path / "out"
    out.mkdir()
    run(PYRESTORE, "-r", "-y", "-f", tmp_path / "l0", cwd=out)
    run(PYRESTORE, "-r", "-y", "-M", "-f", tmp_path / "l1.", cwd=out)
    for i in range(12):
        name = f"f{i:02d}"
        assert (out / "proj" / name).read_bytes() == (m / "home" / "proj" / name).read_bytes()
