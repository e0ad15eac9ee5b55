"""``snapfs`` volume events and their vetoes: ``volume offline|online``, the
phases of ``volume move``, ``failover MOUNT --takeover|...``, the veto
check of ``unmount``, and ``restore-file`` (see :mod:`snapfs.vetoes`)."""

from __future__ import annotations

import argparse
import errno
import os
import stat
import time
from pathlib import Path

from snapdump.session_registry import sessions_on

from .. import client, moving
from ..errors import SnapfsError, VolumeBusy
from ..vetoes import FAILOVER_EVENTS, SINGLE_FILE_OWNER, event_seconds, named, veto
from . import UsageError
from .subcommands import volume_subcommand

#: the ``snapfs volume`` actions this module runs
VOLUME_ACTIONS = ("offline", "online", "move")


def add_veto_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--override-vetoes", action="store_true",
                   help="abort the dump and restore sessions running on the volume (not restartable) and go on")
    p.add_argument("--automatic", action="store_true",
                   help="a system-initiated event: running sessions are always aborted")


def add_parsers(sub) -> None:
    f = volume_subcommand(sub, "failover", cmd_failover,
                          "a simulated storage failover, aggregate relocation or MetroCluster switchover")
    which = f.add_mutually_exclusive_group(required=True)
    for flag, (what, _) in FAILOVER_EVENTS.items():
        which.add_argument(f"--{flag}", dest="event", action="store_const", const=flag, help=what)
    add_veto_flags(f)
    add_restore_file_parser(sub)


def _say(line: str) -> None:
    print(line, flush=True)


def check_unmount(a: argparse.Namespace) -> None:
    """Before ``snapfs unmount``: the vetoes of the sessions on the mounted volume."""
    try:
        voldir = client.find_volume(a.mountpoint)
    except (SnapfsError, OSError):  # not a snapfs mount: the unmount itself says so
        return
    with client.open_volume(voldir) as c:
        name = c.info().name
    veto(voldir, name, "unmount", override=a.override_vetoes, automatic=a.automatic, say=_say)


def cmd_volume_event(a: argparse.Namespace) -> Path | None:
    """``snapfs volume offline|online|move``; after a move, the volume's new folder."""
    with client.open_volume(a.vol) as c:
        name = c.info().name
        if a.action == "online":
            c.availability("online")
            _say(f"volume {name} is online")
        elif a.action == "offline":
            veto(c.voldir, name, "volume offline", override=a.override_vetoes, automatic=a.automatic, say=_say)
            c.availability("offline")
            _say(f"volume {name} is offline: I/O and dump and restore sessions are refused")
        else:
            _move(c, a, name)
            return c.voldir
    return None


def _move(c: client.Client, a: argparse.Namespace, name: str) -> None:
    """Transfer (sessions go on), cutover (new sessions refused), wait for the
    running sessions to finish, move the folder (:mod:`snapfs.moving`): the
    identity changes unless kept."""
    if not a.to:
        raise UsageError("volume move needs --to DIR (a new folder in another folder)")
    dest = moving.check_destination(c.voldir, a.to, c.info().mountpoint)
    _say(f"volume move of {name} to {dest}: transferring (dump and restore sessions go on)")
    started = time.monotonic()
    try:
        moving.precopy(c.voldir, dest)
        time.sleep(max(0.0, event_seconds() - (time.monotonic() - started)))
        c.availability("move-cutover")
        try:
            running = sessions_on(c.voldir)
            if running:
                _say(f"volume move of {name}: cutover done; new sessions are refused until the move completes; "
                     f"waiting for {named(running)} to finish")
            while sessions_on(c.voldir):
                time.sleep(0.05)
            before = c.volume_identity().generation
            ident = c.volume_relocate(dest, keep_identity=a.keep_identity)
        finally:
            c.availability("online")
    finally:
        moving.drop_staging(dest)
    if ident.generation == before:
        _say(f"volume move of {name} to {dest} complete: its identity was kept (the CAB case): incremental dumps "
             "by an NDMP application speaking Cluster Aware Backup go on from their baselines; other incremental "
             "dumps (pydump, NDMP without CAB) need a new baseline (level 0)")
    else:
        _say(f"volume move of {name} to {dest} complete: its generation is now {ident.generation}: "
             "the next incremental dump needs a new baseline (level 0)")


def cmd_failover(a: argparse.Namespace) -> int:
    what, served_by = FAILOVER_EVENTS[a.event]
    with client.open_volume(a.vol) as c:
        name = c.info().name
        veto(c.voldir, name, what, override=a.override_vetoes, automatic=a.automatic, say=_say)
        c.availability(a.event)
        try:
            time.sleep(event_seconds())
            # a session that slipped in before the volume went unavailable: aborted, the event goes on
            veto(c.voldir, name, what, override=True, automatic=True, say=_say)
        finally:
            c.availability("online")
    _say(f"{what} of volume {name} done: served by {served_by}, online")
    return 0


def add_restore_file_parser(sub) -> None:
    r = volume_subcommand(sub, "restore-file", cmd_restore_file,
                          "copy one file back from a snapshot (a simulated SnapMirror single-file restore)")
    r.add_argument("snapshot", help="the snapshot to copy it from")
    r.add_argument("path", help="the file, relative to the volume root (or a path under the mount point)")


def _copy_back(src: Path, dest: Path) -> None:
    """Write ``src``'s bytes over ``dest`` in place (a LUN keeps its size: it may not be
    truncated), cut or grow it to ``src``'s size when that differs, and give it ``src``'s
    mode and times."""
    st = os.stat(src)
    with open(src, "rb") as fin, open(dest, "r+b") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
        if os.fstat(fout.fileno()).st_size != st.st_size:
            fout.truncate(st.st_size)
        fout.flush()
        os.fsync(fout.fileno())
    os.chmod(dest, stat.S_IMODE(st.st_mode))
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))


def cmd_restore_file(a: argparse.Namespace) -> int:
    """Restrict the file, copy it back from the snapshot as the restriction's owner, lift it."""
    with client.open_volume(a.vol) as c:
        info = c.info()
        if not info.mountpoint:
            raise UsageError("restore-file needs a mounted volume")
        mount = Path(info.mountpoint)
        p = Path(a.path)
        rel = str(p.relative_to(mount)) if p.is_absolute() and p.is_relative_to(mount) else a.path.lstrip("/")
        restores = [s for s in sessions_on(c.voldir) if s.kind == "restore"]
        if restores:
            raise VolumeBusy(f"single-file restore of {rel} on volume {info.name} refused: a restore session "
                             f"runs on it: {named(restores)}")
        src, dest = mount / os.fsdecode(client.SNAPDIR_NAME) / a.snapshot / rel, mount / rel
        if not src.is_file():
            raise SnapfsError(f"snapshot {a.snapshot} of volume {info.name} has no file {rel}", errno.ENOENT)
        if not dest.exists():
            dest.touch(0o600)
        c.restrict(rel, SINGLE_FILE_OWNER)
        try:
            c.act_as(SINGLE_FILE_OWNER, restore=True)
            time.sleep(event_seconds())  # the transfer
            _copy_back(src, dest)
        finally:
            c.unrestrict(rel, SINGLE_FILE_OWNER)
    _say(f"restored {rel} of volume {info.name} from snapshot {a.snapshot}")
    return 0
