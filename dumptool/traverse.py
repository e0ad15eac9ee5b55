"""Deciding what to dump: walk the source tree, number its inodes, select by level.

This is dump's mapping passes (``traverse.c``) for an ordinary directory tree:

* Pass I walks the tree with ``os.scandir``/``lstat`` and gives every file a
  dump inode number from the chain's :class:`~dumptool.dumpdates.InodeMap`
  (the root is always 2, a hard link keeps one number), then picks the files
  a level N dump takes: all of them at level 0, else those whose ctime or
  mtime is not older than the base date (whole seconds, ``>=`` as dump does:
  a file changed in the base dump's own second is taken again).
* Pass II adds the directories: every changed one, every one on the path to a
  dumped inode (so restore can name it), and the root always.

The result, a :class:`DumpPlan`, also carries the two maps the image starts
with: ``TS_CLRI`` (every inode in use now: an incremental ``restore -r``
deletes what is not set) and ``TS_BITS`` (every inode on this image).

Nothing here writes: the plan is pure data the engine (:mod:`dumptool.dump`)
walks in order.
"""

from __future__ import annotations

import array
import dataclasses
import fcntl
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from .errors import DumpError
from .format import ROOTINO, Dirent, dtype_from_mode

#: ``FS_IOC_GETFLAGS``: the inode flags restore -C compares (``lsattr``).
FS_IOC_GETFLAGS = 0x80086601


class Numbering(Protocol):
    """What the walk needs of an inode-number map (an InodeMap or a fresh one)."""

    def number(self, dev: int, ino: int, *, root: bool = False) -> int: ...

    @property
    def maxino(self) -> int: ...


class FreshNumbering:
    """Dense dump numbers for a one-off dump (no chain to keep stable)."""

    def __init__(self) -> None:
        self._numbers: dict[tuple[int, int], int] = {}
        self._root: tuple[int, int] | None = None
        self._next = ROOTINO + 1

    def number(self, dev: int, ino: int, *, root: bool = False) -> int:
        key = (dev, ino)
        if root:
            self._root = key
            return ROOTINO
        if key == self._root:
            return ROOTINO
        if key not in self._numbers:
            self._numbers[key] = self._next
            self._next += 1
        return self._numbers[key]

    @property
    def maxino(self) -> int:
        return self._next - 1


@dataclasses.dataclass
class Node:
    """One inode of the source tree.

    ``path`` is the first name the walk found (bytes, absolute); ``parents``
    every directory holding a name of it; ``entries`` a directory's children
    as dirents, sorted by name.
    """

    ino: int
    path: bytes
    st: os.stat_result
    parents: list[int] = dataclasses.field(default_factory=list)
    entries: list[Dirent] | None = None

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def parent(self) -> int:
        """The directory ".." names (the root's own number for the root)."""
        return self.parents[0] if self.parents else ROOTINO


@dataclasses.dataclass
class DumpPlan:
    """What one dump writes, decided before the first byte.

    ``directories`` and ``files`` are the dumped inode numbers in the order
    the image needs them (ascending, directories first); ``in_use`` is the
    TS_CLRI set and ``dumped`` the TS_BITS set; ``maxino`` is one past the
    highest number any map, header or dirent uses.
    """

    nodes: dict[int, Node]
    directories: list[int]
    files: list[int]
    in_use: set[int]
    dumped: set[int]
    maxino: int
    warnings: list[str] = dataclasses.field(default_factory=list)

    def names(self) -> Iterator[tuple[int, str]]:
        """``(inode, "./path")`` for every dumped inode under every name, as
        ``restore -t`` lists them (directories walked from the root)."""
        yield ROOTINO, "."

        def walk(ino: int, prefix: str) -> Iterator[tuple[int, str]]:
            for entry in self.nodes[ino].entries or ():
                if entry.ino not in self.dumped:
                    continue
                name = f"{prefix}/{os.fsdecode(entry.name)}"
                yield entry.ino, name
                child = self.nodes[entry.ino]
                if child.is_dir:
                    yield from walk(entry.ino, name)

        yield from walk(ROOTINO, ".")


def inode_flags(path: bytes, st: os.stat_result) -> int:
    """The ``FS_IOC_GETFLAGS`` value of a regular file or directory, else 0
    (restore -C compares it; the ioctl fails on devices and sockets)."""
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        buf = array.array("l", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
        return buf[0] & 0xFFFFFFFF
    except OSError:
        return 0
    finally:
        os.close(fd)


def walk_tree(
    source: str | os.PathLike[str],
    numbering: Numbering,
    *,
    exclude: Iterable[int] = (),
    warn: Callable[[str], None] | None = None,
) -> dict[int, Node]:
    """Pass I's walk: every inode under ``source`` (which must be a directory),
    numbered.  Inodes in ``exclude`` (dump numbers) are left out with their
    subtrees, and their names with them.  Files that vanish while the walk runs
    are skipped."""
    root = os.fsencode(os.path.abspath(source))
    try:
        st = os.lstat(root)
    except OSError as exc:
        raise DumpError(f"cannot dump {os.fsdecode(root)}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DumpError(f"cannot dump {os.fsdecode(root)}: not a directory")
    excluded = set(exclude)
    nodes: dict[int, Node] = {}
    root_ino = numbering.number(st.st_dev, st.st_ino, root=True)
    nodes[root_ino] = Node(root_ino, root, st)
    stack = [root_ino]
    while stack:
        dino = stack.pop()
        dnode = nodes[dino]
        entries: list[Dirent] = []
        try:
            with os.scandir(dnode.path) as it:
                listing = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if warn:
                warn(f"cannot read directory {os.fsdecode(dnode.path)}: {exc.strerror}; dumped empty")
            listing = []
        for entry in listing:
            try:
                cst = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone since the listing
            cino = numbering.number(cst.st_dev, cst.st_ino)
            if cino in excluded:
                continue
            if len(entry.name) > 255:
                if warn:
                    warn(f"name too long for a dump image, skipped: {os.fsdecode(entry.path)[:80]}...")
                continue
            node = nodes.get(cino)
            if node is None:
                node = nodes[cino] = Node(cino, entry.path, cst)
                if node.is_dir:
                    stack.append(cino)
            node.parents.append(dino)
            entries.append(Dirent(cino, entry.name, dtype_from_mode(cst.st_mode)))
        dnode.entries = entries
    return nodes


def changed_since(st: os.stat_result, base_date: int) -> bool:
    """True when the inode's ctime or mtime (whole seconds) is not older than
    ``base_date``: dump takes the base dump's own second again."""
    return max(int(st.st_ctime), int(st.st_mtime)) >= base_date


def plan_dump(nodes: dict[int, Node], maxino: int, base_date: int = 0) -> DumpPlan:
    """Pass I's selection and Pass II's directories for a dump based on
    ``base_date`` (0: a level 0, everything)."""
    if base_date <= 0:
        dumped = set(nodes)
    else:
        dumped = {ino for ino, node in nodes.items() if changed_since(node.st, base_date)}
        dumped.add(ROOTINO)
        # Every directory on the path to a dumped inode, up to the root.
        todo = list(dumped)
        while todo:
            for parent in nodes[todo.pop()].parents:
                if parent not in dumped:
                    dumped.add(parent)
                    todo.append(parent)
    directories = sorted(i for i in dumped if nodes[i].is_dir)
    files = sorted(i for i in dumped if not nodes[i].is_dir)
    return DumpPlan(nodes, directories, files, set(nodes), dumped, max(maxino, max(nodes)) + 1)
