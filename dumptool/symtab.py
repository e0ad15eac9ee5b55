"""restore's symbol table: names <-> inode numbers of a restored tree.

``restore -r`` writes it as ``./restoresymtable`` after each image, and an
incremental ``restore -r`` reads it back to tell what was renamed, deleted,
added or changed since (dump-format.md section 8.3).  The table holds the
directory tree as the dump saw it (each directory's entries: name and inode
number), the kind of every inode (directory or leaf), the directories' times
(so that directories the incremental touched but did not re-dump get them
back), and the dump and base dates that chain the images.

While ``-r`` waits for a later volume the file is also its checkpoint (a
:class:`ResumePoint`), from which ``-R`` goes on with that volume.

The file is our own format (JSON, names kept byte-exact through
``os.fsdecode``/``os.fsencode``, blocks in hex); it is not Linux restore's
binary table.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from tapelib.durable import replace_file

from .errors import DumpError
from .format import ROOTINO, ByteOrder, Header, Segment

SYMTAB_NAME = "restoresymtable"
_MAGIC = "pyrestore-symtab"
_VERSION = 1


class SymtabError(DumpError):
    """The symbol table file is missing, foreign or damaged."""


@dataclass
class DirFix:
    """What a directory gets once its contents are restored: times, and for a
    dumped directory owner, mode and xattrs too (``mode`` ``None``: times only)."""

    path: bytes
    atime_ns: int
    mtime_ns: int
    uid: int = 0
    gid: int = 0
    mode: int | None = None
    xattrs: list[tuple[bytes, bytes]] | None = None


@dataclass(slots=True)
class Checkpointed:
    """The inode -r is writing, as a checkpoint saves it: its first record
    (in a checkpoint the header only, for a regular file), how many bytes of
    its data are on disk (``base``), whether only its attributes are left
    and whether its node was made."""

    ino: int
    paths: list[bytes]
    first: Segment
    base: int = 0
    attrs_only: bool = False
    made: bool = False


@dataclass
class ResumePoint:
    """Where a ``-r`` stopped: the image it applied, the volume it asked for,
    the leaves still to extract, the directories still to finish, and the
    blocks of the record that volume change cut (``head``), and the image's
    volume header (``tape``: the volume resumed with must be of its dump,
    :func:`~dumptool.format.other_dump`; None in a table saved before it was kept)."""

    volume: int
    date: int
    ddate: int
    level: int
    byte_order: str
    leaves: dict[int, list[bytes]]
    dirs: list[DirFix]
    current: Checkpointed | None = None
    head: list[bytes] = field(default_factory=list)
    tape: Header | None = None

    def to_json(self) -> dict:
        order = ByteOrder[self.byte_order]
        cur = self.current
        return {
            "volume": self.volume, "date": self.date, "ddate": self.ddate, "level": self.level,
            "byte_order": self.byte_order,
            "leaves": {str(ino): [os.fsdecode(p) for p in paths] for ino, paths in self.leaves.items()},
            "dirs": [[os.fsdecode(f.path), f.atime_ns, f.mtime_ns, f.uid, f.gid, f.mode,
                      None if f.xattrs is None else [[os.fsdecode(n), v.hex()] for n, v in f.xattrs]]
                     for f in self.dirs],
            "current": None if cur is None else {
                "ino": cur.ino, "paths": [os.fsdecode(p) for p in cur.paths], "base": cur.base,
                "attrs_only": cur.attrs_only, "made": cur.made,
                "blocks": [cur.first.header.pack(order).hex()] + [b.hex() for b in cur.first.blocks]},
            "head": [b.hex() for b in self.head],
            "tape": None if self.tape is None else self.tape.pack(order).hex(),
        }

    @classmethod
    def from_json(cls, doc: dict) -> "ResumePoint":
        order = ByteOrder[doc["byte_order"]]
        cur = doc["current"]
        current = None
        if cur is not None:
            blocks = [bytes.fromhex(b) for b in cur["blocks"]]
            first = Segment(0, Header.unpack(blocks[0], order), tuple(blocks[1:]))
            current = Checkpointed(int(cur["ino"]), [os.fsencode(p) for p in cur["paths"]], first,
                                   int(cur["base"]), bool(cur["attrs_only"]), bool(cur["made"]))
        return cls(
            volume=int(doc["volume"]), date=int(doc["date"]), ddate=int(doc["ddate"]), level=int(doc["level"]),
            byte_order=order.name,
            leaves={int(k): [os.fsencode(p) for p in v] for k, v in doc["leaves"].items()},
            dirs=[DirFix(os.fsencode(p), int(a), int(m), int(u), int(g), None if mode is None else int(mode),
                         None if x is None else [(os.fsencode(n), bytes.fromhex(v)) for n, v in x])
                  for p, a, m, u, g, mode, x in doc["dirs"]],
            current=current, head=[bytes.fromhex(b) for b in doc["head"]],
            tape=None if doc.get("tape") is None else Header.unpack(bytes.fromhex(doc["tape"]), order),
        )


@dataclass
class SymbolTable:
    """The tree a chain of ``-r`` restores has built so far.

    ``dirs`` maps a directory's inode to its entries ``[(name, inode)]``
    ("." and ".." left out), ``dir_kind`` says which inodes are directories
    (every other inode named in ``dirs`` is a leaf), ``dir_times`` holds
    ``(atime_ns, mtime_ns)`` per directory.  ``dump_date`` is the ``c_date``
    of the last image applied: the next incremental's ``c_ddate`` must equal it.
    """

    dump_date: int = 0
    base_date: int = 0
    level: int = 0
    dirs: dict[int, list[tuple[bytes, int]]] = field(default_factory=dict)
    dir_times: dict[int, tuple[int, int]] = field(default_factory=dict)
    resume: ResumePoint | None = None  # set while a -r waits for a later volume

    def is_dir(self, ino: int) -> bool:
        return ino in self.dirs

    def edges(self) -> Iterator[tuple[int, bytes, int]]:
        """``(parent, name, child)`` for every name reachable from the root, top-down."""
        if ROOTINO not in self.dirs:
            return
        todo = [ROOTINO]
        seen = {ROOTINO}
        while todo:
            parent = todo.pop(0)
            for name, child in self.dirs.get(parent, ()):
                yield parent, name, child
                if child in self.dirs and child not in seen:
                    seen.add(child)
                    todo.append(child)

    def paths(self) -> dict[int, list[bytes]]:
        """Every inode's names as ``./a/b`` paths (the root is ``.``)."""
        out: dict[int, list[bytes]] = {ROOTINO: [b"."]} if ROOTINO in self.dirs else {}
        where: dict[int, bytes] = {ROOTINO: b"."}
        for parent, name, child in self.edges():
            path = where[parent] + b"/" + name
            out.setdefault(child, []).append(path)
            if child in self.dirs:
                where.setdefault(child, path)
        return out

    # -- the file ------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table atomically (a temporary file renamed over *path*)."""
        head = {
            "magic": _MAGIC, "version": _VERSION,
            "dump_date": self.dump_date, "base_date": self.base_date, "level": self.level,
            "dir_times": {str(ino): list(t) for ino, t in self.dir_times.items()},
            "resume": None if self.resume is None else self.resume.to_json(),
        }
        enc, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsdecode's

        def write(out: BinaryIO) -> None:
            # the directories one at a time (json.dumps each: json.dump
            # encodes in Python, piece by piece), never all in memory twice
            out.write((json.dumps(head)[:-1] + ', "dirs": {').encode("ascii"))
            sep = ""
            for ino, entries in self.dirs.items():
                out.write(f'{sep}"{ino}": {json.dumps([[n.decode(enc, errors), c] for n, c in entries])}'
                          .encode("ascii"))
                sep = ", "
            out.write(b"}}")

        try:
            replace_file(path, write, 0o600)
        except OSError as exc:
            raise SymtabError(f"cannot write symbol table {os.fspath(path)}: {exc.strerror}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "SymbolTable":
        """Read a table :meth:`save` wrote; :class:`SymtabError` when it cannot."""
        name = os.fspath(path)
        try:
            with open(name, encoding="ascii") as f:
                doc = json.load(f)
        except FileNotFoundError:
            raise SymtabError(
                f"cannot open symbol table file {name}: restore the lower-level dumps "
                "with -r in this directory first") from None
        except OSError as exc:
            raise SymtabError(f"cannot read symbol table file {name}: {exc.strerror}") from None
        except ValueError:
            raise SymtabError(f"{name} is not a pyrestore symbol table (damaged or foreign)") from None
        if not isinstance(doc, dict) or doc.get("magic") != _MAGIC or doc.get("version") != _VERSION:
            raise SymtabError(f"{name} is not a pyrestore symbol table (damaged or foreign)")
        try:
            return cls(
                dump_date=int(doc["dump_date"]), base_date=int(doc["base_date"]), level=int(doc["level"]),
                dirs={int(k): [(os.fsencode(n), int(c)) for n, c in v] for k, v in doc["dirs"].items()},
                dir_times={int(k): (int(v[0]), int(v[1])) for k, v in doc["dir_times"].items()},
                resume=None if doc.get("resume") is None else ResumePoint.from_json(doc["resume"]),
            )
        except (KeyError, TypeError, ValueError, IndexError, DumpError):
            raise SymtabError(f"symbol table file {name} is damaged") from None
