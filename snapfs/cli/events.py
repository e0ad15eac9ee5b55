"""``snapfs`` volume events and their vetoes: ``volume offline|online``, the
phases of ``volume move``, ``failover MOUNT --takeover|...``, and the veto
check of ``unmount`` (see :mod:`snapfs.vetoes`)."""

from __future__ import annotations

import argparse
import time

from snapdump.session_registry import sessions_on

from .. import client
from ..vetoes import FAILOVER_EVENTS, event_seconds, named, veto
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


def _say(line: str) -> None:
    print(line, flush=True)


def check_unmount(a: argparse.Namespace) -> None:
    """Before ``snapfs unmount``: the vetoes of the sessions on the mounted volume."""
    try:
        voldir = client.find_volume(a.mountpoint)
    except Exception:  # not a snapfs mount: the unmount itself says so
        return
    with client.open_volume(voldir) as c:
        name = c.info().name
    veto(voldir, name, "unmount", override=a.override_vetoes, automatic=a.automatic, say=_say)


def cmd_volume_event(a: argparse.Namespace) -> None:
    """``snapfs volume offline|online|move``."""
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


def _move(c: client.Client, a: argparse.Namespace, name: str) -> None:
    """Transfer (sessions go on), cutover (new sessions refused), wait for the
    running sessions to finish, complete (the identity changes unless kept)."""
    if not a.to:
        raise UsageError("volume move needs --to AGGREGATE")
    _say(f"volume move of {name} to {a.to}: transferring (dump and restore sessions go on)")
    time.sleep(event_seconds())
    c.availability("move-cutover")
    try:
        running = sessions_on(c.voldir)
        if running:
            _say(f"volume move of {name}: cutover done; new sessions are refused until the move completes; "
                 f"waiting for {named(running)} to finish")
        while sessions_on(c.voldir):
            time.sleep(0.05)
        before = c.volume_identity().generation
        ident = c.volume_move(a.to, keep_identity=a.keep_identity)
    finally:
        c.availability("online")
    if ident.generation == before:
        _say(f"volume move of {name} to {a.to} complete: its identity was kept (CAB): "
             "incremental dumps go on from their baselines")
    else:
        _say(f"volume move of {name} to {a.to} complete: its generation is now {ident.generation}: "
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
