"""``snapfs``: create, mount and inspect snapfs volumes, and manage their snapshots.

Each subcommand parses its arguments, calls the Volume, :mod:`snapfs.mount`
or :mod:`snapfs.client`, and prints.  A failure is one line on stderr
(``snapfs: ...``) and a non-zero exit: 1 for errors, 2 for bad usage.  fsck
exits as e2fsck does: 0 clean, 1 damage found and all repaired, 4 damage left
(or found by a check without ``-y``), 8 it could not check (mounted, not a
volume, unreadable).
"""

from __future__ import annotations

import argparse
import fractions
import importlib.metadata
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from snapdump.errors import os_error_text
from snapdump.exits import run
from snapdump.standard_streams import STDIN, STDOUT, require

from .. import client, mount as _mount
from . import UsageError, events, filer, filer_luns
from .columns import Columns, print_fields
from .subcommands import volume_subcommand
from ..errors import SnapfsError
from ..fsck import FSCK_ERROR, fsck_path
from ..limits import INT_MAX, check_label
from ..store import MAX_BLOCK_SIZE
from ..room import human
from ..volume import DEFAULT_BLOCK_SIZE, Volume

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``10G``, ``512M``, ``4096`` (binary units, optional ``B``/``iB`` suffix), in whole bytes,
    exactly (no float rounding); at most :data:`~snapfs.limits.INT_MAX` (what a volume can store)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (use e.g. 10G, 512M, 4096)")
    digits = m.group(1).lstrip("0").partition(".")[0]
    n = 0 if len(digits) > 30 else int(fractions.Fraction(m.group(1)) * _UNITS[m.group(2).upper()])
    if len(digits) > 30 or n > INT_MAX:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise argparse.ArgumentTypeError(f"size {shown!r} is too large (at most {INT_MAX} bytes, 8 EiB)")
    return n


def _ts(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9))


# ---------------------------------------------------------------------- commands

def positive_int(text: str) -> int:
    """An integer of at least 1 (``--inodes``), at most what a volume stores."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    if n > INT_MAX:
        raise argparse.ArgumentTypeError(f"{text} is too large (at most {INT_MAX})")
    return n


def cmd_create(a: argparse.Namespace) -> int:
    bs = a.block_size if a.block_size is not None else DEFAULT_BLOCK_SIZE
    if bs < 512 or bs & (bs - 1):
        raise UsageError(f"--block-size {bs} is not a power of two of at least 512")
    if bs > MAX_BLOCK_SIZE:
        raise UsageError(f"--block-size {bs} is larger than {human(MAX_BLOCK_SIZE)}")
    if a.size < bs:
        raise UsageError(f"--size {a.size} is smaller than one block ({bs} bytes)")
    inodes = a.inodes if a.inodes is not None else max(1024, a.size // 16384)
    name = a.name if a.name is not None else Path(a.voldir).resolve().name
    if not name:
        raise UsageError("--name: a volume name may not be empty")
    try:
        check_label(name, "volume name")
    except SnapfsError as e:  # bad input: refused before anything is made
        raise UsageError(e.message if a.name is not None else
                         f"{e.message} (the folder's name: give the volume one with --name)") from None
    Volume.create(a.voldir, a.size, inodes, name=name, block_size=a.block_size).close()
    print(f"created volume {name} in {a.voldir}: {human(a.size)}, {inodes} inodes")
    return 0


def cmd_mount(a: argparse.Namespace) -> int:
    options = [o for opt in a.o for o in opt.split(",") if o]
    stale = _mount.stale_mount(a.mountpoint)
    if stale is not None:
        _mount.clear_stale(a.mountpoint)
        print(f"snapfs: {a.mountpoint}: cleared a stale mount of {stale} first (its daemon had died)",
              file=sys.stderr)
    _mount.mount(a.voldir, a.mountpoint, foreground=a.foreground, options=options)
    return 0


def cmd_unmount(a: argparse.Namespace) -> int:
    stale = _mount.stale_mount(a.mountpoint)
    if stale is None:
        events.check_unmount(a)
        _mount.unmount(a.mountpoint)
        return 0
    _mount.clear_stale(a.mountpoint)
    print(f"{a.mountpoint}: cleared a stale mount of {stale} (its daemon had died: the volume keeps every"
          f" change it had committed; 'snapfs fsck {stale}' checks it)")
    return 0


def cmd_snapshot(a: argparse.Namespace) -> int:
    with client.open_volume(a.vol) as c:
        if a.action == "create":
            if a.name == "":
                raise UsageError("snapshot create: a snapshot name may not be empty"
                                 " (leave NAME out for the next snapshot_for_backup.N)")
            s = c.snapshot_create(a.name)
            print(s.name)
        elif a.action == "list":
            snaps = c.snapshot_list()
            print(f"{'NAME':<32} {'CREATED':<19} {'EXCLUSIVE':>12}  HOLDERS")
            for s in snaps:
                print(f"{s.name:<32} {_ts(s.created_ns):<19} {human(s.exclusive_bytes):>12}  {','.join(s.holders)}")
        elif a.action == "delete":
            freed = c.snapshot_delete(_need(a.name, "delete"))
            print(f"deleted snapshot {a.name} ({human(freed)} freed)")
        elif a.action == "rename":
            if not a.new:
                raise UsageError("snapshot rename needs VOL NAME NEW")
            c.snapshot_rename(_need(a.name, "rename"), a.new)
        elif a.action in ("hold", "release"):
            if not a.new:
                raise UsageError(f"snapshot {a.action} needs VOL NAME HOLDER")
            getattr(c, f"snapshot_{a.action}")(_need(a.name, a.action), a.new)
    return 0


def _need(name: str | None, action: str) -> str:
    if not name:
        raise UsageError(f"snapshot {action} needs a snapshot NAME")
    return name


_DF = Columns(("Volume", "<16"), ("Size", ">12"), ("Used", ">12"), ("Avail", ">12"), ("Use%", ">5"),
              ("Snapshots", ">12"), ("Inodes", ">10"), ("IUsed", ">10"), ("IFree", ">10"))


def cmd_df(a: argparse.Namespace) -> int:
    with client.open_volume(a.vol) as c:
        i = c.info()
        advice = c.room_advice() if i.size and i.used >= filer.NEARLY_FULL * i.size else None
    # as df(1): used / (used + available), rounded up
    pct = -(-100 * i.used // (i.used + i.available)) if i.used + i.available else 0
    _DF.print([(i.name, human(i.size), human(i.used), human(i.available), f"{pct}%", human(i.snapshots),
                i.inodes_total, i.inodes_used, i.inodes_total - i.inodes_used)])
    if advice:
        print(advice)
    return 0


def cmd_volume_show(a: argparse.Namespace) -> int:
    if a.action in events.VOLUME_ACTIONS:
        moved_to = events.cmd_volume_event(a)
        if moved_to is None:
            return 0
        if not os.path.ismount(a.vol):  # a folder named: it is elsewhere now
            a.vol = moved_to
    with client.open_volume(a.vol) as c:
        if a.action == "modify":
            if a.type is None and a.security_style is None and a.size is None:
                raise UsageError("volume modify needs --type rw|ro, --security-style unix|ntfs|mixed or --size SIZE")
            if a.size is not None:
                c.volume_resize(a.size)
            if a.type is not None or a.security_style is not None:
                c.volume_modify(a.type, a.security_style)
        i, ident = c.info(), c.volume_identity()
    rows = [
        ("name", i.name), ("path", i.path),
        ("mounted on", f"{i.mountpoint} (pid {i.pid})" if i.mountpoint else "-"),
        ("block size", str(i.block_size)), ("size", f"{human(i.size)} ({i.size})"),
        ("used", f"{human(i.used)} ({i.used})"), ("available", f"{human(i.available)} ({i.available})"),
        ("live data", f"{human(i.live)} ({i.live})"),
        ("snapshot space", f"{human(i.snapshots)} ({i.snapshots})"), ("snapshots", str(i.snapshot_count)),
        ("inodes used", str(i.inodes_used)), ("inodes free", str(i.inodes_total - i.inodes_used)),
        ("uuid", ident.uuid), ("type", ident.type), ("generation", str(ident.generation)),
        ("security style", ident.security_style), ("aggregate", ident.aggregate),
    ]
    print_fields(rows)
    return 0


def cmd_fsck(a: argparse.Namespace) -> int:
    try:
        rep = fsck_path(a.voldir, repair=a.repair)
    except SnapfsError as e:
        print(f"snapfs: {e.message}", file=sys.stderr)
        return FSCK_ERROR
    except OSError as e:
        print(f"snapfs: {os_error_text(e)}", file=sys.stderr)
        return FSCK_ERROR
    except sqlite3.Error as e:
        print(f"snapfs: {a.voldir}: the metadata database cannot be read ({e})", file=sys.stderr)
        return FSCK_ERROR
    repaired = set(rep.repaired)
    for p in rep.problems:
        print(("repaired: " if p in repaired else "problem: ") + p)
    if rep.clean:
        print(f"{a.voldir}: clean")
    else:
        left = len(rep.uncorrected)
        print(f"{a.voldir}: {len(rep.problems)} problem(s), {len(rep.repaired)} repaired"
              + ("" if left == 0 or a.repair else "; run 'snapfs fsck -y' to repair"), file=sys.stderr)
    return rep.status


# ---------------------------------------------------------------------- named streams (issue 12)

def _in_volume(vol: str, path: str) -> str:
    """PATH as the volume sees it: relative to its root (an absolute PATH must lie under VOL)."""
    p = Path(path)
    if not p.is_absolute():
        return path
    for root in (Path(vol).absolute(), Path(vol).resolve()):
        if p.is_relative_to(root):
            return str(p.relative_to(root))
    raise UsageError(f"{path} is not under {vol}")


def cmd_stream(a: argparse.Namespace) -> int:
    path = _in_volume(a.vol, a.path)
    if a.action != "list" and not a.name:
        raise UsageError(f"stream {a.action} needs MOUNT PATH NAME")
    if a.action == "write" and a.file in (None, "-"):
        require(STDIN, "stream write reads the stream's bytes from it (or give FILE)")
    elif a.action == "cat":
        require(STDOUT, "stream cat writes the stream there")
    with client.open_volume(a.vol) as c:
        if a.action == "list":
            for s in c.stream_list(path):
                print(f"{s['size']:>12}  {'xattr' if s['in_xattr'] else 'data ':<5}  {s['name']}")
        elif a.action == "cat":
            for chunk in c.stream_chunks(path, a.name):  # a chunk at a time: a stream of any size
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        elif a.action == "write":
            if a.file in (None, "-"):
                with tempfile.NamedTemporaryFile(prefix="snapfs-stream-") as tmp:
                    shutil.copyfileobj(sys.stdin.buffer, tmp)
                    tmp.flush()
                    r = c.stream_write(path, a.name, tmp.name)
            else:
                r = c.stream_write(path, a.name, a.file)
            print(f"{a.name}: {r['size']} bytes, kept {'as an xattr' if r['in_xattr'] else 'as data'}")
        else:
            c.stream_delete(path, a.name)
    return 0


# ---------------------------------------------------------------------- parser

def _version() -> str:
    try:
        return importlib.metadata.version("snapdump")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise UsageError(f"{message} (see 'snapfs --help')")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snapfs", description="copy-on-write FUSE volumes with O(1) named snapshots")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("create", help="make a new volume in a folder")
    c.add_argument("voldir", help="the folder to hold the volume (absent or empty)")
    c.add_argument("--size", type=parse_size, default=parse_size("10G"),
                   help="data space, e.g. 10G, 512M (default 10G)")
    c.add_argument("--inodes", type=positive_int, default=None,
                   help="inode limit, at least 1 (default: one per 16 KiB, at least 1024)")
    c.add_argument("--name", default=None, help="the volume's name (default: the folder's name)")
    c.add_argument("--block-size", type=parse_size, default=None,
                   help=f"copy-on-write block size, a power of two >= 512 (default {DEFAULT_BLOCK_SIZE}); a file's"
                        " extended attributes get this much room, at most 64 KiB (64 KiB with the default)")
    c.set_defaults(fn=cmd_create)

    m = sub.add_parser("mount", help="mount a volume (returns once usable)")
    m.add_argument("voldir", help="the volume folder")
    m.add_argument("mountpoint", help="an empty directory (a stale snapfs mount there is cleared first)")
    m.add_argument("--foreground", "-f", action="store_true", help="serve in this process until unmounted")
    m.add_argument("-o", action="append", default=[], metavar="OPT[,OPT...]", help="FUSE options, e.g. allow_other")
    m.set_defaults(fn=cmd_mount)

    u = sub.add_parser("unmount", aliases=["umount"], help="flush and unmount")
    u.add_argument("mountpoint", help="where the volume is mounted (a stale mount is cleared)")
    events.add_veto_flags(u)
    u.set_defaults(fn=cmd_unmount)

    s = volume_subcommand(sub, "snapshot", cmd_snapshot, "snapshots",
                          ["create", "list", "delete", "rename", "hold", "release"])
    s.add_argument("name", nargs="?", help="the snapshot (create: default the next snapshot_for_backup.N)")
    s.add_argument("new", nargs="?", help="new name (rename) or holder (hold/release)")

    volume_subcommand(sub, "df", cmd_df, "space and inode figures")

    v = volume_subcommand(sub, "volume", cmd_volume_show, "a volume's details",
                          ["show", "modify", *events.VOLUME_ACTIONS])
    v.add_argument("--type", choices=["rw", "ro"], default=None,
                   help="modify: rw, or ro (a mirror destination: the mount refuses writes); bumps the generation")
    v.add_argument("--security-style", choices=["unix", "ntfs", "mixed"], default=None,
                   help="modify: the default security style of new qtrees")
    v.add_argument("--size", type=parse_size, default=None, help="modify: the volume's new size, e.g. 20G")
    v.add_argument("--to", default=None, metavar="DIR",
                   help="move: the volume's new folder (absent, in another existing folder); bumps the generation")
    v.add_argument("--keep-identity", action="store_true", help="move: keep the generation (the CAB case)")
    events.add_veto_flags(v)
    events.add_parsers(sub)

    filer.add_parsers(sub)
    filer_luns.add_parsers(sub, parse_size)

    st = volume_subcommand(sub, "stream", cmd_stream, "the named streams of a file (any size)",
                           ["list", "cat", "write", "delete"])
    st.add_argument("path", help="the file, relative to the volume root (or a path under the mount point)")
    st.add_argument("name", nargs="?", help="the stream's name (cat, write, delete)")
    st.add_argument("file", nargs="?", help="write: the file whose bytes the stream takes (default: stdin)")

    f = sub.add_parser("fsck", help="check a volume that is not mounted (-y: and repair it)")
    f.add_argument("voldir", help="the volume folder (not mounted)")
    how = f.add_mutually_exclusive_group()
    how.add_argument("-y", "--repair", dest="repair", action="store_true",
                     help="repair what is safe to repair (the live tree and free space; snapshots are history)")
    how.add_argument("-n", dest="repair", action="store_false",
                     help="report only, changing nothing (the default)")
    f.set_defaults(fn=cmd_fsck)
    return p


def main(argv: list[str] | None = None) -> int:
    return run("snapfs", lambda: _snapfs(argv))


def _snapfs(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
