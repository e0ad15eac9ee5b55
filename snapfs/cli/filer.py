"""``snapfs`` subcommands for the filer's objects: qtrees, junctions, client I/O
restrictions, and the volume's type and move (issue 12).  Each parses, calls
:mod:`snapfs.client` and prints; failures are the CLI's (one line, exit 1 or 2)."""

from __future__ import annotations

import argparse
import os
import sys

from .. import client
from ..identity import SECURITY_STYLES
from ..qtrees import OPLOCKS
from ..room import NEARLY_FULL
from . import UsageError
from .columns import Columns, print_fields
from .subcommands import volume_subcommand

__all__ = ["NEARLY_FULL", "add_parsers"]


_QTREES = Columns(("ID", ">5"), ("NAME", "<32"), ("STYLE", "<6"), ("OPLOCKS", ""))
_JUNCTIONS = Columns(("PATH", "<32"), ("VOLUME", "<16"), ("UUID", "<36"), ("TARGET", ""))
_RESTRICTIONS = Columns(("OWNER", "<24"), ("PATH", ""))


def cmd_qtree(a: argparse.Namespace) -> int:
    if a.action != "list" and not a.name:
        raise UsageError(f"qtree {a.action} needs MOUNT NAME")
    with client.open_volume(a.vol) as c:
        if a.action == "list":
            _QTREES.print((q.id, q.name, q.security_style, q.oplocks) for q in c.qtree_list())
        elif a.action == "create":
            q = c.qtree_create(a.name, a.security_style, a.oplocks or "enable")
            print(f"created qtree {q.name} (id {q.id}, {q.security_style}, oplocks {q.oplocks})")
        elif a.action == "show":
            q = c.qtree_show(a.name)
            print_fields([("name", q.name), ("id", q.id), ("security style", q.security_style),
                          ("oplocks", q.oplocks), ("inode", q.ino)])
        elif a.action == "modify":
            q = c.qtree_modify(a.name, a.security_style, a.oplocks)
            print(f"qtree {q.name}: {q.security_style}, oplocks {q.oplocks}")
        elif a.action == "delete":
            c.qtree_delete(a.name, a.force)
            print(f"deleted qtree {a.name}")
    return 0


def cmd_junction(a: argparse.Namespace) -> int:
    if a.action != "list" and not a.path:
        raise UsageError(f"junction {a.action} needs MOUNT PATH")
    if a.action == "create" and not a.volume:
        raise UsageError("junction create needs --volume OTHERVOL (a snapfs volume folder or mount point)")
    with client.open_volume(a.vol) as c:
        if a.action == "list":
            _JUNCTIONS.print((j.path, j.volume, j.uuid, j.target) for j in c.junction_list())
        elif a.action == "create":
            j = c.junction_create(a.path, a.volume)
            print(f"junction {j.path} -> {j.target} (volume {j.volume}, {j.uuid})")
        else:
            c.junction_delete(a.path)
            print(f"deleted junction {a.path}")
    return 0


def cmd_restrict(a: argparse.Namespace) -> int:
    """``restrict MOUNT PATH --owner ID``, ``restrict list MOUNT``,
    ``restrict exec MOUNT --owner ID -- CMD...`` (run CMD as the owner)."""
    args, owner = _take_owner(list(a.args))
    end = args.index("--") if "--" in args else len(args)
    restore = "--restore" in args[:end]  # exec: a restoring owner, which no lock stops (snapfs.locks)
    if restore:
        args.remove("--restore")
    if args and args[0] == "list":
        if len(args) != 2:
            raise UsageError("restrict list needs MOUNT")
        with client.open_volume(args[1]) as c:
            _RESTRICTIONS.print((r.owner, r.path) for r in c.restriction_list())
        return 0
    if not owner:
        raise UsageError("restrict needs --owner ID")
    if args and args[0] == "exec":
        if len(args) < 3:
            raise UsageError("restrict exec needs MOUNT --owner ID -- COMMAND [ARG...]")
        cmd = args[2:] if args[2] != "--" else args[3:]
        if not cmd:
            raise UsageError("restrict exec needs a COMMAND after --")
        with client.open_volume(args[1]) as c:
            c.act_as(owner, restore)  # for as long as this connection is open: the command is our child
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                try:
                    os.execvp(cmd[0], cmd)
                except OSError as e:
                    print(f"snapfs: {cmd[0]}: {e.strerror}", file=sys.stderr)
                    os._exit(127)
            _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    if len(args) != 2:
        raise UsageError("restrict needs MOUNT PATH --owner ID")
    with client.open_volume(args[0]) as c:
        r = c.restrict(args[1], owner)
    print(f"restricted {r.path} to owner {r.owner}")
    return 0


def _take_owner(args: list[str]) -> tuple[list[str], str | None]:
    """``args`` without ``--owner ID`` (before any ``--``), and the ID."""
    end = args.index("--") if "--" in args else len(args)
    for i, x in enumerate(args[:end]):
        if x == "--owner" and i + 1 < end:
            return args[:i] + args[i + 2:], args[i + 1]
        if x.startswith("--owner="):
            return args[:i] + args[i + 1:], x.split("=", 1)[1]
    return args, None


def cmd_unrestrict(a: argparse.Namespace) -> int:
    with client.open_volume(a.vol) as c:
        c.unrestrict(a.path, a.owner)
    print(f"lifted the restriction of {a.path}")
    return 0


def add_parsers(sub) -> None:
    """The filer's subcommands, added to the ``snapfs`` parser's ``sub``."""
    q = volume_subcommand(sub, "qtree", cmd_qtree, "qtrees", ["create", "list", "show", "modify", "delete"])
    q.add_argument("name", nargs="?", help="the qtree (a directory in the volume's root)")
    q.add_argument("--security-style", choices=SECURITY_STYLES, default=None,
                   help="unix, ntfs or mixed (default: the volume's)")
    q.add_argument("--oplocks", choices=OPLOCKS, default=None, help="enable (default) or disable")
    q.add_argument("--force", action="store_true", help="delete: also a qtree that is not empty")

    j = volume_subcommand(sub, "junction", cmd_junction, "junctions to other volumes", ["create", "list", "delete"])
    j.add_argument("path", nargs="?", help="where the junction is, from the volume's root")
    j.add_argument("--volume", help="create: the other snapfs volume (folder or mount point)")

    r = sub.add_parser("restrict", help="client I/O restriction: MOUNT PATH --owner ID | list MOUNT"
                       " | exec MOUNT --owner ID [--restore] -- CMD")
    r.add_argument("args", nargs=argparse.REMAINDER,
                   help="MOUNT PATH --owner ID, list MOUNT, or exec MOUNT --owner ID -- CMD [ARG...]")
    r.set_defaults(fn=cmd_restrict)

    u = volume_subcommand(sub, "unrestrict", cmd_unrestrict, "lift a client I/O restriction")
    u.add_argument("path", help="the restricted file, from the volume's root")
    u.add_argument("--owner", required=True, help="the owner that set it")

