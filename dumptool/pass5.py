"""What a dump gathers for Pass V (the layout: :mod:`dumptool.format.pass5`).

:class:`Pass5Gatherer` takes each dumped inode's xattrs before its EA record
is packed and keeps in that record what fits restore's 4096 bytes, in a
stable priority (POSIX ACLs, ``user.DOSATTRIB``, then the others smallest
first, ``security.NTACL`` last); what does not fit goes to Pass V.  The
filer's records among the xattrs (``trusted.snapfs.lun``,
``trusted.snapfs.qtree``, a junction's ``trusted.snapfs.junction``) go to Pass V too (a LUN clone's without its
backing), and stay in the EA record as the xattrs they are (so that real
``restore -C`` against the volume counts the same xattrs); so do what a tree offers
beyond xattrs: named streams stored as data and stored DOS 8.3 names
(:class:`~dumptool.snaptree.SnapshotTree` has both; a tree without them
gives none).  A stream is gathered as its name and size only
(:class:`TreeStream`): :meth:`Pass5Gatherer.write` reads its bytes from the
snapshot a chunk at a time as they go to the image.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from .errors import DumpError, FormatLimitError
from .format import XATTR_MAXSIZE, Dinode, Header, pack_xattr_block, split_xattr_name
from .format.pass5 import Entry, Kind, kind_name, pass5_records
from .history import RecordPosition
from .imagewriter import ImageWriter
from .traverse import DumpPlan, Node

LUN_XATTR = "trusted.snapfs.lun"
QTREE_XATTR = "trusted.snapfs.qtree"
JUNCTION_XATTR = "trusted.snapfs.junction"
NTACL_XATTR = "security.NTACL"
_FIRST = ("system.posix_acl_access", "system.posix_acl_default", "user.DOSATTRIB")


def _priority(item: tuple[str, bytes]) -> tuple:
    name, value = item
    if name in _FIRST:
        return (0, _FIRST.index(name), 0, name)
    return (2 if name == NTACL_XATTR else 1, 0, len(value), name)


def independent_lun(record: bytes) -> bytes:
    """A LUN record without its clone backing (dump writes a clone as an independent LUN)."""
    fields = [f for f in record.split(b";") if not f.startswith(b"backing=")]
    return b";".join(fields)


class TreeStream:
    """A named stream of a tree's node, read when written: its size, its bytes in chunks."""

    def __init__(self, tree: object, node: Node, name: bytes, size: int) -> None:
        self._tree, self._node, self._name, self.size = tree, node, name, size

    def __len__(self) -> int:
        return self.size

    def chunks(self) -> Iterator[bytes]:
        return self._tree.stream_chunks(self._node, self._name)  # type: ignore[attr-defined]


class Pass5Gatherer:
    """The entries of one dump's Pass V, gathered as the inodes are written."""

    def __init__(self, tree: object, warn: Callable[[str], None]) -> None:
        self.entries: list[Entry] = []
        self._warn = warn
        self._tree = tree
        self._streams = getattr(tree, "stream_sizes", None)
        self._dosnames = getattr(tree, "dosnames", None)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def ea_part(self, node: Node, values: dict[str, bytes]) -> dict[str, bytes]:
        """The xattrs of *node* to keep in its EA record; the rest go to Pass V.
        *values* holds only names an EA record can carry (or the filer's records)."""
        ino = node.ino
        for name, kind in ((LUN_XATTR, Kind.LUN), (QTREE_XATTR, Kind.QTREE), (JUNCTION_XATTR, Kind.JUNCTION)):
            record = values.get(name)  # kept in the EA record too: real restore -C counts it
            if record is not None:
                if kind == Kind.LUN:
                    record = independent_lun(record)
                label = os.path.basename(node.path) if kind == Kind.QTREE else b""
                self.entries.append(Entry(kind, ino, label, record))
        if not values:
            return values
        # an upper bound of the EA payload (entries and values padded; an ACL's ext form is shorter)
        if 36 + sum(20 + len(n) + len(v) + 3 for n, v in values.items()) <= XATTR_MAXSIZE:
            return values
        try:
            pack_xattr_block(values)
            return values
        except DumpError:
            pass
        keep: dict[str, bytes] = {}
        for name, value in sorted(values.items(), key=_priority):
            trial = {**keep, name: value}
            try:
                pack_xattr_block(trial)
                keep = trial
            except DumpError:
                if name == NTACL_XATTR:
                    self.entries.append(Entry(Kind.NTACL, ino, b"", value))
                else:
                    self.entries.append(Entry(Kind.XATTR, ino, os.fsencode(name), value))
        return keep

    def extras(self, node: Node, is_dir: bool) -> None:
        """*node*'s streams stored as data, and a directory's stored DOS names."""
        if self._streams is not None:
            for name, size in self._streams(node).items():
                self.entries.append(Entry(Kind.STREAM, node.ino, name, TreeStream(self._tree, node, name, size)))
        if is_dir and self._dosnames is not None:
            for name, dos in self._dosnames(node).items():
                self.entries.append(Entry(Kind.DOSNAME, node.ino, name, dos))

    def what(self) -> str:
        """A short count of what Pass V holds, for dump's line."""
        counts: dict[str, int] = {}
        for e in self.entries:
            k = kind_name(e.kind, "other")
            counts[k] = counts.get(k, 0) + 1
        return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))

    def write(self, carrier: Node | None, out: ImageWriter, tape: Header, say: Callable[[str], None]) -> None:
        """Pass V: one record after the last file (:mod:`dumptool.format.pass5`), carried by
        that file's inode (``carrier``: None when the image holds no file, and then the
        objects are left out with a warning); its position goes to the file history
        observers that have an ``add_pass5``."""
        if not self.entries:
            return
        if carrier is None:
            self._warn(f"{len(self.entries)} object(s) for Pass V ({self.what()}) not dumped: "
                       "the image holds no file to carry them")
            return
        say(f"dumping (Pass V) [ACLs, streams and filer records: {self.what()}]")
        position = RecordPosition(out.writer)
        for history in out.histories:
            add = getattr(history, "add_pass5", None)
            if add is not None:
                add(carrier.ino, position)
        dinode = Dinode.from_stat(carrier, flags=0, size=0)
        out.emit(pass5_records(tape, carrier.ino, dinode, self.entries))

    def regather(self, plan: DumpPlan, first: int) -> None:
        """What the inodes a restarted dump does not write again (the first ``first``
        of its directories, then files) gave Pass V: a restarted dump's Pass V holds
        their objects too."""
        tree = self._tree
        for ino in (plan.directories + plan.files)[:first]:
            node = plan.nodes[ino]
            self.extras(node, node.st_mode & 0o170000 == 0o040000)
            values = tree.xattrs(node)
            if values:
                ea_payload(node, values, self, self._warn)


def ea_payload(node: Node, values: dict[str, bytes], pass5: Pass5Gatherer | None,
               warn: Callable[[str], None]) -> bytes | None:
    """The EA record's payload of ``node`` for its xattrs ``values`` (those whose names an
    image can carry; what does not fit goes to ``pass5``), or None when none is left."""
    for name in list(values):
        try:
            split_xattr_name(name)
        except FormatLimitError as exc:
            warn(f"{os.fsdecode(node.path)}: {exc}")
            del values[name]
    if pass5 is not None:
        values = pass5.ea_part(node, values)
    if not values:
        return None
    try:
        return pack_xattr_block(values)
    except DumpError as exc:
        warn(f"extended attributes of {os.fsdecode(node.path)} not dumped: {exc}")
        return None
