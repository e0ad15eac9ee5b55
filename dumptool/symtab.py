"""restore's symbol table: names <-> inode numbers of a restored tree.

``restore -r`` writes it as ``./restoresymtable`` after each image, and an
incremental ``restore -r`` reads it back to tell what was renamed, deleted,
added or changed since (dump-format.md section 8.3).  The table holds the
directory tree as the dump saw it (each directory's entries: name and inode
number), the kind of every inode (directory or leaf), the directories' times
(so that directories the incremental touched but did not re-dump get them
back), and the dump and base dates that chain the images.

The file is our own format (JSON, names kept byte-exact through
``os.fsdecode``/``os.fsencode``); it is not Linux restore's binary table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from .errors import DumpError
from .format import ROOTINO

SYMTAB_NAME = "restoresymtable"
_MAGIC = "pyrestore-symtab"
_VERSION = 1


class SymtabError(DumpError):
    """The symbol table file is missing, foreign or damaged."""


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
        doc = {
            "magic": _MAGIC, "version": _VERSION,
            "dump_date": self.dump_date, "base_date": self.base_date, "level": self.level,
            "dirs": {str(ino): [[os.fsdecode(n), c] for n, c in entries] for ino, entries in self.dirs.items()},
            "dir_times": {str(ino): list(t) for ino, t in self.dir_times.items()},
        }
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        try:
            with open(tmp, "w", encoding="ascii") as f:
                json.dump(doc, f)
            os.replace(tmp, path)
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
            )
        except (KeyError, TypeError, ValueError, IndexError):
            raise SymtabError(f"symbol table file {name} is damaged") from None
