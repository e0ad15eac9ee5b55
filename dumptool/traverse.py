"""Deciding what to dump: walk the source tree, number its inodes, select by level.

This is dump's mapping passes (``traverse.c``), for any tree:

* Pass I walks the tree (a :class:`~dumptool.trees.Tree`'s ``walk``; the
  live tree's is :func:`dumptool.livetree.walk_tree`) and gives every file a
  dump inode number from the chain's :class:`~dumptool.dumpdates.InodeMap`
  (the root is always 2, a hard link keeps one number), then picks the files
  a level N dump takes: all of them at level 0, else those whose ctime or
  mtime is not older than the base date (whole seconds, ``>=`` as dump does:
  a file changed in the base dump's own second is taken again).  With
  ``dump -m``, a non-directory whose mtime is older than the base date (its
  inode changed, its contents did not) is marked metadata-only.
* Pass II adds the directories: every changed one, every one on the path to a
  dumped inode (so restore can name it), and the root always.

The result, a :class:`DumpPlan`, also carries the two maps the image starts
with: ``TS_CLRI`` (every inode in use now: an incremental ``restore -r``
deletes what is not set) and ``TS_BITS`` (every inode on this image).

Nothing here writes: the plan is pure data the engine (:mod:`dumptool.dump`)
walks in order.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from .format import ROOTINO, TP_BSIZE, TP_NINDIR, Dirent

#: The "no dump" inode flag (``chattr +d``): dump leaves such a file out, and
#: such a directory with everything under it, at levels from ``-h`` up.
FS_NODUMP_FL = 0x00000040

_new = object.__new__


def dirent_maker() -> Callable[[int, bytes, int], Dirent]:
    """``Dirent(ino, name, type)`` at a third of the cost: the frozen
    dataclass's own ``__init__`` goes through ``object.__setattr__``."""
    set_ino, set_name, set_type = Dirent.ino.__set__, Dirent.name.__set__, Dirent.type.__set__

    def make(ino: int, name: bytes, type: int) -> Dirent:
        entry = _new(Dirent)
        set_ino(entry, ino)
        set_name(entry, name)
        set_type(entry, type)
        return entry

    return make


class Numbering(Protocol):
    """What the walk needs of an inode-number map (an InodeMap or a fresh one)."""

    def number(self, dev: int, ino: int, *, root: bool = False) -> int: ...

    def number_all(self, dev: int, root: int, inos: Iterable[int]) -> dict[int, int]: ...

    @property
    def maxino(self) -> int: ...


class FreshNumbering:
    """Dense dump numbers for a one-off dump (no chain to keep stable)."""

    def __init__(self) -> None:
        self._numbers: dict[int, int] = {}
        self._root: int | None = None
        self._dev: int | None = None
        self._next = ROOTINO + 1

    def number(self, dev: int, ino: int, *, root: bool = False) -> int:
        # One int, not a tuple of two: one is kept per inode.  On the root's
        # device the inode number itself (no new object).
        if root:
            self._dev = dev
        key = ino if dev == self._dev else (dev + 1) << 64 | ino
        if root:
            self._root = key
            return ROOTINO
        if key == self._root:
            return ROOTINO
        if key not in self._numbers:
            self._numbers[key] = self._next
            self._next += 1
        return self._numbers[key]

    def number_all(self, dev: int, root: int, inos: Iterable[int]) -> dict[int, int]:
        """``{ino: number(dev, ino)}`` for the root (``root=True``) then each of ``inos`` (the
        root's device's other inodes, each once), numbered in that order."""
        numbers = {root: self.number(dev, root, root=True)}
        if self._numbers:  # numbered before: one at a time
            for ino in inos:
                numbers[ino] = self.number(dev, ino)
            return numbers
        inos = list(inos)
        if root in inos:
            inos = [ino for ino in inos if ino != root]
        first = self._next
        self._numbers = dict(zip(inos, range(first, first + len(inos))))  # keys as number's: the inode itself
        self._next = first + len(self._numbers)
        numbers.update(self._numbers)
        return numbers

    @property
    def maxino(self) -> int:
        return self._next - 1


class Stat:
    """The fields of an ``os.stat_result`` a dump uses, under the same names:
    a plan holds one per inode, and a whole stat_result (floats and all) was
    most of a plan's memory."""

    __slots__ = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime_ns", "st_mtime_ns",
                 "st_ctime_ns", "st_rdev", "st_blocks", "st_dev", "st_ino")

    def __init__(self, st: "os.stat_result | Stat") -> None:
        self._fill(st)

    def _fill(self, st: "os.stat_result | Stat") -> None:
        mode, nlink, uid, gid, size = st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_size
        atime_ns, mtime_ns, ctime_ns = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
        rdev, blocks, dev, ino = st.st_rdev, st.st_blocks, st.st_dev, st.st_ino
        share = _SHARED.setdefault if len(_SHARED) < _SHARED_LIMIT else _SHARED.get  # (key, default)
        self.st_mode = share(mode, mode)
        self.st_nlink = nlink
        self.st_uid = share(uid, uid)
        self.st_gid = share(gid, gid)
        self.st_size = share(size, size)
        # Equal times share one int (a file written once has three equal ones).
        self.st_mtime_ns = mtime_ns
        self.st_atime_ns = mtime_ns if atime_ns == mtime_ns else atime_ns
        self.st_ctime_ns = mtime_ns if ctime_ns == mtime_ns else ctime_ns
        self.st_rdev = rdev
        self.st_blocks = blocks
        self.st_dev = share(dev, dev)
        self.st_ino = ino

    @property
    def st_mtime(self) -> float:
        return self.st_mtime_ns / 1e9

    @property
    def st_ctime(self) -> float:
        return self.st_ctime_ns / 1e9

    @property
    def st_atime(self) -> float:
        return self.st_atime_ns / 1e9


#: One int object for values many inodes repeat (modes, owners, devices, sizes).
_SHARED: dict[int, int] = {}
_SHARED_LIMIT = 4096


class Node(Stat):
    """One inode of the source tree.

    ``path`` is the first name the walk found (bytes, absolute; kept as the
    directory's path and the name, which the directory's dirent shares);
    ``parents`` every directory holding a name of it; ``entries`` a
    directory's children as dirents, sorted by name; ``st`` its
    :class:`Stat`: the node itself, which carries the stat fields (one
    object per inode, not two).
    """

    __slots__ = ("ino", "_base", "_name", "_parents", "entries")

    def __init__(self, ino: int, path: bytes, st: "os.stat_result | Stat",
                 parents: Iterable[int] = (), entries: list[Dirent] | None = None,
                 *, name: bytes | None = None) -> None:
        self._fill(st)
        self.ino = ino
        self._base = path    # with ``name``: the directory holding it
        self._name = name
        self.parents = tuple(parents)
        self.entries = entries

    @classmethod
    def child(cls, ino: int, folder: bytes, name: bytes, st: "os.stat_result | Stat", parent: int) -> "Node":
        """``Node(ino, folder, st, (parent,), name=name)``, for the walk's inner loop."""
        self = _new(cls)  # the instance being made, filled as __init__ would
        self._fill(st)
        self._place(ino, folder, name, parent)
        return self

    @classmethod
    def child_of_row(cls, ino: int, folder: bytes, name: bytes, parent: int, row: tuple, dev: int,
                     per_block: int) -> "Node":
        """:meth:`child` given an inode's row as a store keeps it: ``(st_ino, mode, nlink,
        uid, gid, rdev, size, nblocks, atime_ns, mtime_ns, ctime_ns, extra)``, ``nblocks``
        in units of ``per_block`` 512-byte blocks (as
        :meth:`snapfs.reader.SnapshotReader.inode_rows` gives them).  The node takes the row's
        int objects as they are: the caller keeps the rows, so sharing equal ones (as
        :meth:`child` does) would save no memory."""
        self = _new(cls)  # the instance being made, filled as __init__ would
        (self.st_ino, self.st_mode, self.st_nlink, self.st_uid, self.st_gid, self.st_rdev, self.st_size, nblocks,
         atime_ns, mtime_ns, ctime_ns, _extra) = row
        self.st_mtime_ns = mtime_ns
        self.st_atime_ns = mtime_ns if atime_ns == mtime_ns else atime_ns
        self.st_ctime_ns = mtime_ns if ctime_ns == mtime_ns else ctime_ns
        self.st_blocks = nblocks * per_block
        self.st_dev = dev
        self._place(ino, folder, name, parent)
        return self

    def _place(self, ino: int, folder: bytes, name: bytes, parent: int) -> None:
        self.ino = ino
        self._base = folder
        self._name = name
        self._parents = parent
        self.entries = None

    @property
    def st(self) -> Stat:
        return self

    @property
    def parents(self) -> tuple[int, ...]:
        p = self._parents
        return (p,) if type(p) is int else p

    @parents.setter
    def parents(self, value: tuple[int, ...]) -> None:
        # A single parent (most inodes) is kept as the int itself.
        self._parents = value[0] if len(value) == 1 else tuple(value)

    @property
    def path(self) -> bytes:
        return self._base if self._name is None else self._base + b"/" + self._name

    @property
    def location(self) -> tuple[bytes, bytes | None]:
        """``(folder, name)``: the path of the directory holding :attr:`path`
        and the name in it; ``(path, None)`` for the root.  Nodes of one
        directory share one folder object, so a caller can open each
        directory once and the files in it by name."""
        return self._base, self._name

    def __repr__(self) -> str:
        return f"Node(ino={self.ino}, path={self.path!r}, parents={self.parents!r})"

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
    #: ``dump -m``: the dumped non-directories written as ``DR_METAONLY``
    #: headers (attributes and xattrs, no data).
    metaonly: set[int] = dataclasses.field(default_factory=set)

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


def changed_since(st: os.stat_result, base_date: int) -> bool:
    """True when the inode's ctime or mtime (whole seconds) is not older than
    ``base_date``: dump takes the base dump's own second again."""
    return max(st.st_ctime_ns, st.st_mtime_ns) // 1_000_000_000 >= base_date


def modified_since(st: os.stat_result | Stat, base_date: int) -> bool:
    """True when the inode's mtime (whole seconds) is not older than
    ``base_date``: its contents may have changed (dump's ``MSINCE``)."""
    return st.st_mtime_ns // 1_000_000_000 >= base_date


def plan_dump(nodes: dict[int, Node], maxino: int, base_date: int = 0, *, metaonly: bool = False,
              nodump: bool = False, flags: Callable[[Node], int] | None = None,
              force: Iterable[int] = (), skip: Iterable[int] = ()) -> DumpPlan:
    """Pass I's selection and Pass II's directories for a dump based on
    ``base_date`` (0: a level 0, everything).

    *metaonly* is ``dump -m``: with a base date, every dumped inode but a
    directory whose mtime is older than it (changed, not modified: a chmod,
    chown, xattr or rename) goes in :attr:`DumpPlan.metaonly`.  Symlinks,
    devices and fifos too, as Linux dump does.  A level 0 has no base date
    (unless ``-T`` gives one) and takes everything whole, with or without it.

    *nodump*: a regular file with the nodump flag (``chattr +d``) that would
    be dumped is not, as dump leaves it out: it stays in the TS_CLRI map (in
    use: an incremental restore keeps an earlier copy) and its name in its
    directory, but its inode is not on the image.  ``flags`` tells a
    node's inode flags (the tree's :meth:`~dumptool.trees.Tree.flags`).

    *force*: dump numbers taken whole whether they changed or not, never as
    metadata only (files a base dump skipped, or that its chain never held);
    *skip*: dump numbers not taken, kept in use and by name as for nodump
    (files under client I/O restriction an earlier dump took)."""
    in_use = set(nodes)
    force = set(force)
    if base_date <= 0:
        dumped = in_use  # one set for both maps: they are equal
    else:
        # changed_since for each node, in whole nanoseconds: (t // 10**9 >= base) == (t >= base * 10**9)
        since = base_date * 1_000_000_000
        dumped = {ino for ino, node in nodes.items() if node.st_ctime_ns >= since or node.st_mtime_ns >= since}
    if nodump and flags is not None:
        dumped = {ino for ino in dumped if ino == ROOTINO or nodes[ino].st_mode & 0o170000 != stat.S_IFREG
                  or not flags(nodes[ino]) & FS_NODUMP_FL}
    if force or skip:
        dumped = (dumped | (force & in_use)) - set(skip)
    if base_date > 0:
        dumped.add(ROOTINO)
        # Every directory on the path to a dumped inode, up to the root.
        todo = list(dumped)
        while todo:
            for parent in nodes[todo.pop()].parents:
                if parent not in dumped:
                    dumped.add(parent)
                    todo.append(parent)
    folders = {ino for ino, node in nodes.items() if node.st_mode & 0o170000 == stat.S_IFDIR}
    directories = sorted(folders if dumped is in_use else folders & dumped)
    files = sorted(dumped - folders)
    meta: set[int] = set()
    if metaonly and base_date > 0:
        since = base_date * 1_000_000_000  # (not modified_since, as above)
        meta = {ino for ino in files if nodes[ino].st_mtime_ns < since} - force
    return DumpPlan(nodes, directories, files, in_use, dumped, max(maxino, max(nodes)) + 1, metaonly=meta)


def map_blocks(plan: DumpPlan) -> int:
    """The blocks of one inode map (dump's ``howmany(mapsize, TP_BSIZE)``)."""
    return -(-(plan.maxino + 1) // (8 * TP_BSIZE))


def estimate_blocks(plan: DumpPlan, fs_block: int) -> int:
    """dump's ``tapesize`` after Pass II: the two maps with their headers,
    and for each inode to dump its ``blockest``: a header, its allocated
    blocks (at most its size, in the file system's blocks of ``fs_block``
    bytes), half of them for a directory, and the TS_ADDR headers past the
    direct blocks; one block for a device, fifo or socket."""
    nodes = plan.nodes
    per_block = max(fs_block // TP_BSIZE, 1)
    direct = 12 * fs_block  # NDADDR file system blocks
    total = 2 * (map_blocks(plan) + 1)
    # Many inodes share one (mode, size, blocks): each such shape is reckoned once.
    if len(plan.directories) + len(plan.files) == len(nodes):  # every node (the lists are disjoint, of nodes)
        dumped: Iterable[Node] = nodes.values()
    else:
        dumped = map(nodes.__getitem__, itertools.chain(plan.directories, plan.files))
    shapes = collections.Counter([(node.st_mode, node.st_size, node.st_blocks) for node in dumped])
    for (mode, size, blocks), count in shapes.items():
        fmt = mode & 0o170000
        if fmt not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            total += count
            continue
        blkest = -(-blocks * 512 // fs_block) * per_block
        sizeest = -(-size // fs_block) * per_block
        blkest = min(blkest, sizeest)
        if fmt == stat.S_IFDIR:
            blkest //= 2
            sizeest //= 2
        if size > direct:
            blkest += -(-(sizeest - direct // TP_BSIZE) // TP_NINDIR)
        total += (blkest + 1) * count
    return total
