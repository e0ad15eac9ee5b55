"""``snapfs lun`` and ``snapfs lock``: LUNs and their clones, and persistent locks (issue 12,
filerC).  Each parses, calls :mod:`snapfs.client` and prints; failures are the CLI's
(one line, exit 1 or 2)."""

from __future__ import annotations

import argparse
from typing import Callable

from .. import client
from ..locks import LOCK_TYPES, SHARES, parse_range
from ..luns import OSTYPES, SPACE_RESERVE, STATES, Lun
from . import UsageError
from .columns import Columns, print_fields
from .subcommands import volume_subcommand

__all__ = ["add_parsers"]

#: the positional arguments each lun action takes after MOUNT
_LUN_ARGS = {"create": ["PATH"], "list": [], "show": ["PATH"], "resize": ["PATH"], "delete": ["PATH"],
             "modify": ["PATH"], "clone": ["SNAPSHOT", "PATH", "NEWPATH"], "split": ["PATH"]}


_LUNS = Columns(("PATH", "<32"), ("SIZE", ">14"), ("OSTYPE", "<12"), ("SERIAL", "<12"), ("RESERVE", "<9"),
                ("STATE", "<12"), ("USED", ">12"), ("CLONE-OF", ""))
_LOCKS = Columns(("ID", ">5"), ("PATH", "<32"), ("TYPE", "<10"), ("OWNER", "<20"), ("RANGE", "<20"), ("SHARE", ""))


def _lun_row(x: Lun) -> tuple:
    clone = f"{x.backing_snapshot}:{x.backing_path}" if x.backing_snapshot else "-"
    return (x.path, x.size, x.ostype, x.serial, x.space_reserve, x.state, x.used, clone)


def _lun_show(x: Lun) -> None:
    clone = f"{x.backing_snapshot}:{x.backing_path}" if x.backing_snapshot else "-"
    print_fields([("path", x.path), ("size", x.size), ("ostype", x.ostype), ("serial", x.serial),
                  ("naa id", "naa.60a98000" + x.serial.encode().hex()), ("space reserve", x.space_reserve),
                  ("state", x.state), ("used", x.used), ("clone of", clone), ("inode", x.ino)])


def cmd_lun(a: argparse.Namespace) -> int:
    want = _LUN_ARGS[a.action]
    if a.action == "show" and not a.args:
        a.action, want = "list", []
    if len(a.args) != len(want):
        raise UsageError(f"lun {a.action} needs MOUNT {' '.join(want)}".rstrip())
    with client.open_volume(a.vol) as c:
        if a.action == "list":
            _LUNS.print(_lun_row(x) for x in c.lun_list())
            return 0
        if a.action in ("create", "resize") and a.size is None:
            raise UsageError(f"lun {a.action} needs --size SIZE")
        if a.action == "create":
            if not a.ostype:
                raise UsageError(f"lun create needs --ostype TYPE (one of: {', '.join(OSTYPES)})")
            x = c.lun_create(a.args[0], a.size, a.ostype, a.space_reserve or "enabled")
            print(f"created LUN {x.path}: {x.size} bytes, {x.ostype}, serial {x.serial},"
                  f" space reserve {x.space_reserve}")
        elif a.action == "show":
            _lun_show(c.lun_show(a.args[0]))
        elif a.action == "resize":
            x = c.lun_resize(a.args[0], a.size)
            print(f"LUN {x.path}: {x.size} bytes")
        elif a.action == "modify":
            if not (a.state or a.ostype):
                raise UsageError("lun modify needs --state or --ostype")
            x = c.lun_modify(a.args[0], a.state, a.ostype)
            print(f"LUN {x.path}: {x.state}, {x.ostype}")
        elif a.action == "delete":
            c.lun_delete(a.args[0])
            print(f"deleted LUN {a.args[0]}")
        elif a.action == "clone":
            x = c.lun_clone(*a.args)
            print(f"cloned LUN {x.backing_path} of snapshot {x.backing_snapshot} as {x.path} (serial {x.serial})")
        elif a.action == "split":
            x = c.lun_split(a.args[0])
            print(f"split LUN {x.path} from its snapshot ({x.used} bytes its own)")
    return 0


def cmd_lock(a: argparse.Namespace) -> int:
    with client.open_volume(a.vol) as c:
        if a.action == "list":
            _LOCKS.print((x.id, x.path, x.type, x.owner, x.range, x.share) for x in c.lock_list())
        elif a.action == "add":
            if not a.path or not a.type or not a.owner:
                raise UsageError("lock add needs MOUNT PATH --type advisory|mandatory --owner ID")
            start, length = parse_range(a.range or "0:0")
            x = c.lock_add(a.path, a.type, a.owner, start, length, a.share or "deny-none")
            print(f"lock {x.id} on {x.path}: {x.type}, owner {x.owner}, range {x.range}, {x.share}")
        else:
            if not a.path and a.id is None:
                raise UsageError("lock break needs MOUNT PATH [--owner ID] or MOUNT --id N")
            n = c.lock_break(a.path, a.owner, a.id)
            print(f"broke {n} lock{'s' if n != 1 else ''}")
    return 0


def add_parsers(sub, size: Callable[[str], int]) -> None:
    """``lun`` and ``lock``, added to the ``snapfs`` parser's ``sub`` (``size`` parses 16M etc.)."""
    p = volume_subcommand(sub, "lun", cmd_lun, "LUNs", list(_LUN_ARGS))
    p.add_argument("args", nargs="*", help="PATH (from the volume's root); clone: SNAPSHOT PATH NEWPATH")
    p.add_argument("--size", type=size, default=None, help="create/resize: the LUN's size, e.g. 16M")
    p.add_argument("--ostype", default=None, help=f"create/modify: the host's OS type ({', '.join(OSTYPES)})")
    p.add_argument("--space-reserve", choices=SPACE_RESERVE, default=None,
                   help="create: take the blocks now (enabled, the default) or as written")
    p.add_argument("--state", choices=STATES, default=None, help="modify: online or inconsistent")

    k = volume_subcommand(sub, "lock", cmd_lock, "persistent locks", ["add", "list", "break"])
    k.add_argument("path", nargs="?", help="the locked file, from the volume's root")
    k.add_argument("--type", choices=LOCK_TYPES, default=None, help="add: advisory or mandatory")
    k.add_argument("--owner", default=None, help="add: the lock's owner ID; break: only this owner's")
    k.add_argument("--range", default=None, help="add: OFF:LEN (LEN 0: to the end; default the whole file)")
    k.add_argument("--share", choices=SHARES, default=None, help="add: deny-none (default), deny-read, deny-write")
    k.add_argument("--id", type=int, default=None, help="break: the lock with this id")
