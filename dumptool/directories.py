"""The image's directories, kept in memory to name things (restore's dirs.c).

An image brings every dumped directory before the files (dump-format.md
section 3): :class:`ImageTree` holds them with the image's two inode maps
and answers what restore's directory code does: the tree's names top-down,
``-t``'s listing, a name's inode, the order restore meets an inode's hard
links in, and what extracting some names covers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from snapdump.numerals import is_decimal

from .format import ROOTINO, Dinode, DirEntry


class InodeMap:
    """A TS_CLRI or TS_BITS map kept as its bytes, answering ``ino in map``
    (what :func:`format.parse_inode_map` sets answer, without their 130
    bytes an inode)."""

    __slots__ = ("_bits",)

    def __init__(self, data: bytes) -> None:
        self._bits = data

    def __contains__(self, ino: object) -> bool:
        try:
            return ino > 0 and self._bits[(ino - 1) >> 3] >> ((ino - 1) & 7) & 1 == 1  # type: ignore[operator]
        except (IndexError, TypeError):
            return False


class EveryInode:
    """A map lost to damage: every inode number is in it."""

    __slots__ = ()

    def __contains__(self, ino: object) -> bool:
        return isinstance(ino, int) and ino > 0


#: What the maps are asked: ``ino in map``.
Inodes = set[int] | InodeMap | EveryInode


@dataclass
class DirNode:
    """A directory read from the image: its inode copy, entries and xattrs."""

    dinode: Dinode
    entries: list[DirEntry]
    xattrs: list[tuple[bytes, bytes]] = field(default_factory=list)


def norm(name: str) -> bytes:
    """``./a/b`` for a name given as ``a/b``, ``/a//b/``, ``./a/b``."""
    parts = [p for p in os.fsencode(name).split(b"/") if p not in (b"", b".")]
    return b"/".join([b"."] + parts)


class ImageTree:
    """The directories of one image (*dirs*) and its dump map (*dumped*)."""

    def __init__(self, dirs: dict[int, DirNode], dumped: Inodes) -> None:
        self.dirs = dirs
        self.dumped = dumped
        self._names: dict[int, list[bytes]] | None = None

    def tree_edges(self) -> Iterator[tuple[int, bytes, int]]:
        """``(parent, name, child)`` of the image's tree, top-down in dirent order (pre-order)."""
        if ROOTINO not in self.dirs:
            return  # an empty image
        dirs = self.dirs
        seen = {ROOTINO}
        # a stack of (directory, its entries still to walk): no recursion, any depth
        stack = [(ROOTINO, iter(dirs[ROOTINO].entries))]
        while stack:
            parent, entries = stack[-1]
            for entry in entries:
                if entry.name in (b".", b".."):
                    continue
                yield parent, entry.name, entry.ino
                if entry.ino in dirs and entry.ino not in seen:
                    seen.add(entry.ino)
                    stack.append((entry.ino, iter(dirs[entry.ino].entries)))
                    break
            else:
                stack.pop()

    def names(self) -> dict[int, list[bytes]]:
        """Every inode on the image's tree with its ``./path`` names, in listing order."""
        if self._names is None:
            where = {ROOTINO: b"."}
            out: dict[int, list[bytes]] = {ROOTINO: [b"."]}
            for parent, name, child in self.tree_edges():
                path = where[parent] + b"/" + name
                out.setdefault(child, []).append(path)
                if child in self.dirs:
                    where.setdefault(child, path)
            self._names = out
        return self._names

    def listing(self) -> Iterator[tuple[int, bytes]]:
        """``(inode, ./path)`` as ``restore -t`` lists them: dumped inodes only."""
        if ROOTINO in self.dumped or ROOTINO in self.dirs:
            yield ROOTINO, b"."
        where = {ROOTINO: b"."}
        for parent, name, child in self.tree_edges():
            path = where[parent] + b"/" + name
            if child in self.dirs:
                where.setdefault(child, path)
            if child in self.dumped:
                yield child, path

    def lookup(self, path: str) -> int | None:
        """The inode of a ``[./]a/b`` name on the image, or ``None``."""
        ino = ROOTINO
        for part in os.fsencode(path).split(b"/"):
            if part in (b"", b"."):
                continue
            node = self.dirs.get(ino)
            if node is None:
                return None
            match = [e.ino for e in node.entries if e.name == part and e.name not in (b".", b"..")]
            if not match:
                return None
            ino = match[0]
        return ino

    def in_walk_order(self, paths: list[bytes]) -> list[bytes]:
        """The names of one inode in the order a depth-first walk of the
        directories in entry order meets them (restore extracts the first)."""
        def key(path: bytes) -> list[int]:
            ino, out = ROOTINO, []
            for part in path.split(b"/")[1:]:
                node = self.dirs.get(ino)
                if node is None:
                    break
                index = next((i for i, e in enumerate(node.entries) if e.name == part), len(node.entries))
                out.append(index)
                ino = node.entries[index].ino if index < len(node.entries) else 0
            return out
        return sorted(paths, key=key)

    def selection(self, wanted: Iterable[str], *, by_inode: bool, dir_only: bool, dirs_alone: set[bytes],
                  missing: Callable[[str], None]) -> tuple[dict[int, list[bytes]], dict[int, bytes]]:
        """``(leaf inode -> ./names, directory inode -> ./path)`` of what
        extracting *wanted* (everything when empty) covers, with the
        directories leading to each name; *missing* is told each name not on
        the image.  *by_inode*: the names are inode numbers (``-m``);
        *dir_only* (``-h``) or a path in *dirs_alone* (``-i``): a directory
        is extracted itself, not its contents."""
        wanted = list(wanted)
        leaf_names: dict[int, list[bytes]] = {}
        dir_paths: dict[int, bytes] = {}
        roots = []
        if by_inode:
            for w in wanted:
                if not is_decimal(w) or int(w) not in self.dumped:
                    missing(f"inode {w}")
                    continue
                roots.append((int(w), b"./" + w.encode()))
        else:
            for w in wanted or ["."]:
                ino = self.lookup(w)
                if ino is None or ino not in self.dumped and ino not in self.dirs:
                    missing(os.fsdecode(norm(w)))
                    continue
                path = norm(w)
                roots.append((ino, path))
                # the directories leading to it
                parts = path.split(b"/")
                for i in range(1, len(parts) - 1):
                    lead = b"/".join(parts[:i + 1])
                    lead_ino = self.lookup(os.fsdecode(lead))
                    if lead_ino in self.dirs:
                        dir_paths.setdefault(lead_ino, lead)
        for ino, path in roots:
            if ino in self.dirs and (dir_only or path in dirs_alone):
                dir_paths.setdefault(ino, path)
            elif ino in self.dirs:
                self._select_tree(ino, path, dir_paths, leaf_names)
            else:
                leaf_names.setdefault(ino, [])
                if path not in leaf_names[ino]:
                    leaf_names[ino].append(path)
        return leaf_names, dir_paths

    def _select_tree(self, ino: int, path: bytes, dir_paths: dict[int, bytes],
                     leaf_names: dict[int, list[bytes]]) -> None:
        dir_paths[ino] = path
        stack = [(path, iter(self.dirs[ino].entries))]  # no recursion: any depth
        while stack:
            path, entries = stack[-1]
            for entry in entries:
                if entry.name in (b".", b".."):
                    continue
                child = path + b"/" + entry.name
                if entry.ino in self.dirs:
                    if entry.ino not in dir_paths:
                        dir_paths[entry.ino] = child
                        stack.append((child, iter(self.dirs[entry.ino].entries)))
                        break
                elif entry.ino in self.dumped:
                    leaf_names.setdefault(entry.ino, []).append(child)
            else:
                stack.pop()
