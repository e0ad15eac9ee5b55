"""``-r`` and ``-R`` planned: the operations that apply one image to the
tree a symbol table describes (restore.c's named passes), without touching
anything.  :mod:`dumptool.rebuild` carries them out.

Names are edges ``(parent, name, child)``.  Edges in both trees stay;
old-only edges are removed (*remove old leaves*: a surviving node is parked
in a temporary directory, a deleted one removed; then *remove old nodes*,
the directories that went); new-only edges are made top-down (*node
updates*: parked nodes moved back, new directories made, unchanged leaves
linked; a name neither on the image nor restored before is *an
unreferenced link*, an error); then the dumped leaves are extracted.  A
dumped leaf is always extracted afresh, and an inode number that changed
kind counts as deleted plus new.  Each operation says its ``-v`` line
(:attr:`Op.line`) and whether it writes (:attr:`Op.writes`: ``-N`` skips
it); the plan is a list of them, in order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from .directories import DirNode, ImageTree, Inodes
from .format import ROOTINO, Header
from .symtab import Checkpointed, DirFix, ResumePoint, SymbolTable

_TMP = -1  # "parent" of a node parked in the temporary directory


class Op:
    """One step of a rebuild."""

    __slots__ = ()
    #: ``-N`` skips it (it changes the tree, the table or the input)
    writes = True

    @property
    def line(self) -> str | None:
        """What ``-v`` says before it (``None``: nothing)."""
        return None


@dataclass(frozen=True, slots=True)
class Say(Op):
    """A phase's ``-v`` line, and nothing else."""

    text: str
    writes = False

    @property
    def line(self) -> str | None:
        return self.text


@dataclass(frozen=True, slots=True)
class MakeTmp(Op):
    """Make the temporary directory the removed names wait in (``./RSTTMPdate``)."""

    rel: bytes


@dataclass(frozen=True, slots=True)
class ParkDir(Op):
    """Move a surviving directory that lost its name into the temporary directory."""

    rel: bytes
    to: bytes
    ino: int
    tmp_name: str

    @property
    def line(self) -> str | None:
        return f"rename {os.fsdecode(self.rel)} to {self.tmp_name}/{self.ino}"


@dataclass(frozen=True, slots=True)
class Park(Op):
    """Move a surviving leaf that lost its (first) name into the temporary directory."""

    rel: bytes
    to: bytes


@dataclass(frozen=True, slots=True)
class ParkChanged(Op):
    """Move a leaf the image dumps again aside until its record says
    whether it is metadata only (``dump -m``: this node stays)."""

    rel: bytes
    to: bytes
    ino: int


@dataclass(frozen=True, slots=True)
class RemoveLeaf(Op):
    """Remove a name of a leaf (restore's removeleaf)."""

    rel: bytes

    @property
    def line(self) -> str | None:
        return f"Remove leaf {os.fsdecode(self.rel)}"


@dataclass(frozen=True, slots=True)
class RemoveNode(Op):
    """Remove a directory that went, with what is left in it (restore's removenode)."""

    rel: bytes

    @property
    def line(self) -> str | None:
        return f"Remove node {os.fsdecode(self.rel[2:])}"


@dataclass(frozen=True, slots=True)
class MoveBack(Op):
    """Move a parked directory to its new name."""

    src: bytes
    rel: bytes
    ino: int
    tmp_name: str

    @property
    def line(self) -> str | None:
        return f"rename {self.tmp_name}/{self.ino} to {os.fsdecode(self.rel)}"


@dataclass(frozen=True, slots=True)
class MakeDir(Op):
    """Make a new directory."""

    rel: bytes

    @property
    def line(self) -> str | None:
        return f"Make node {os.fsdecode(self.rel)}"


@dataclass(frozen=True, slots=True)
class Link(Op):
    """A new name of a leaf restored before: a hard link to it."""

    src: bytes
    rel: bytes

    @property
    def line(self) -> str | None:
        return f"link {os.fsdecode(self.rel)}"


@dataclass(frozen=True, slots=True)
class Unreferenced(Op):
    """A name of an inode neither on this image nor restored before: an error."""

    rel: bytes
    ino: int
    writes = False


@dataclass(frozen=True, slots=True)
class Forget(Op):
    """Directories moved: the descriptors kept by path are stale."""

    writes = False


@dataclass(frozen=True, slots=True)
class DropTmp(Op):
    """Remove the temporary directory when nothing waits in it for its record."""

    rel: bytes


@dataclass(frozen=True, slots=True)
class Checkpoints(Op):
    """From here on, each volume change first saves a checkpoint (for ``-R``)
    that finishes the directories with *dirs*."""

    dirs: list[DirFix]


@dataclass(frozen=True, slots=True)
class FindParked(Op):
    """``-R``: the parked leaves of *leaves* the interrupted ``-r`` left in
    the temporary directory *rel* are waiting for their records again."""

    rel: bytes
    leaves: dict[int, list[bytes]]
    writes = False


@dataclass(frozen=True, slots=True)
class ClearAfterCheckpoint(Op):
    """``-R``: remove what the interrupted ``-r`` made of *current* after its checkpoint."""

    current: Checkpointed


@dataclass(frozen=True, slots=True)
class FinishCurrent(Op):
    """``-R``: go on with the inode the checkpoint caught half written
    (*leaves*: the ones still to extract after it, what a checkpoint on
    the way saves)."""

    current: Checkpointed
    leaves: dict[int, list[bytes]]
    writes = False


@dataclass(frozen=True, slots=True)
class ExtractLeaves(Op):
    """Extract the dumped leaves under their names (each name a path);
    ``-N`` reads them and writes nothing."""

    leaves: dict[int, list[bytes]]
    writes = False


@dataclass(frozen=True, slots=True)
class AddLinks(Op):
    """Say the hard links the extraction made (``-v``: "Add links")."""

    writes = False


@dataclass(frozen=True, slots=True)
class DropParked(Op):
    """Remove the parked nodes no metadata-only record took back, with the temporary directory *rel*."""

    rel: bytes


@dataclass(frozen=True, slots=True)
class SetDirModes(Op):
    """The directories' owner, mode, xattrs and times, deepest first (restore's setdirmodes)."""

    dirs: list[DirFix]


@dataclass(frozen=True, slots=True)
class CheckEnd(Op):
    """Read on to the end of the image; one without its end is an error."""

    writes = False


@dataclass(frozen=True, slots=True)
class SaveTable(Op):
    """Record the image applied in ``restoresymtable`` (and no checkpoint)."""


@dataclass
class RebuildPlan:
    """The symbol table the tree will match, and the operations that make it so."""

    table: SymbolTable
    ops: list[Op]


def tmp_rel(date: int) -> bytes:
    """``./RSTTMPdate``: where -r parks nodes while it renames (restore's)."""
    return b"./RSTTMP%d" % date


def plan_rebuild(old: SymbolTable, header: Header, in_use: Inodes, tree: ImageTree, *,
                 park_changed: bool = True) -> RebuildPlan:
    """The plan that applies the image whose *header*, TS_CLRI map
    *in_use* and directories (*tree*) are read to the tree *old*
    describes (empty: a level 0).  *park_changed*: keep the old node of a
    leaf dumped again until its record says whether it is metadata only
    (a ``-N`` run only says what it would remove)."""
    return _Planner(old, header, in_use, tree).plan(park_changed)


def plan_resume(rp: ResumePoint) -> list[Op]:
    """The operations that go on with the ``-r`` checkpoint *rp* stopped at."""
    tmp = tmp_rel(rp.date)
    ops: list[Op] = [Checkpoints(rp.dirs), FindParked(tmp, rp.leaves)]
    if rp.current is not None:
        ops += [ClearAfterCheckpoint(rp.current), FinishCurrent(rp.current, rp.leaves)]
    return ops + [ExtractLeaves(rp.leaves), DropParked(tmp), SetDirModes(rp.dirs), CheckEnd(), SaveTable()]


class _Planner:
    """Works out one :class:`RebuildPlan` (its state: where each directory is as the operations go)."""

    def __init__(self, old: SymbolTable, header: Header, in_use: Inodes, tree: ImageTree) -> None:
        self.old = old
        self.in_use = in_use
        self.dumped = tree.dumped
        self.dirs: dict[int, DirNode] = tree.dirs
        self.tree = tree
        self.date = header.c_date
        self.tmp_name = f"RSTTMP{header.c_date}"
        new_dirs: dict[int, list[tuple[bytes, int]]] = {}
        dumped, dirs = self.dumped, self.dirs
        for ino, entries in old.dirs.items():
            if ino in in_use and not (ino in dumped and ino not in dirs):
                new_dirs[ino] = list(entries)
        for ino, node in dirs.items():
            new_dirs[ino] = [(e.name, e.ino) for e in node.entries if e.name not in (b".", b"..")]
        self.new = SymbolTable(dirs=new_dirs, dir_times=dict(old.dir_times))
        for ino, node in dirs.items():
            self.new.dir_times[ino] = (node.dinode.atime_ns, node.dinode.mtime_ns)
        new_edges = [edge for edge in self.new.edges() if edge[2] in in_use or edge[2] in dumped or edge[2] in dirs]
        reachable = {ROOTINO} | {c for _, _, c in new_edges}
        self.new.dirs = {ino: [(n, c) for n, c in new_dirs[ino] if c in reachable]
                         for ino in reachable if ino in new_dirs}
        for ino in list(self.new.dir_times):
            if ino not in self.new.dirs:
                del self.new.dir_times[ino]
        self.new_edges = new_edges
        self.old_edges = list(old.edges())
        # where each directory currently is: (parent, name) or (_TMP, 0)
        self.where: dict[int, tuple[int, bytes]] = {}
        # Paths are built from bytes, each directory's once (``prefix``, kept
        # until a directory moves): relpath and join per file were a fifth
        # of a restore of many small files.
        self.prefixes: dict[int, bytes] = {ROOTINO: b"./"}
        self.tmp = tmp_rel(self.date)

    def _survives(self, ino: int) -> bool:
        """Was in the old tree and is the same node in the new one (maybe renamed)."""
        if ino == ROOTINO:
            return True
        if ino not in self.in_use:
            return False
        was_dir = self.old.is_dir(ino)
        is_dir = ino in self.new.dirs or ino in self.dirs
        if was_dir != is_dir:
            return False
        if not is_dir and ino in self.dumped:
            return False  # a changed leaf: extracted afresh
        return True

    def _changed_leaf(self, ino: int) -> bool:
        """A leaf of the old tree that this image dumps again as a leaf."""
        return ino in self.dumped and ino in self.in_use and ino not in self.dirs and ino not in self.new.dirs

    def prefix(self, ino: int) -> bytes:
        """``./a/b/`` of directory *ino* as it is now."""
        got = self.prefixes.get(ino)
        if got is None:
            p, n = self.where[ino]
            if p == _TMP:
                got = self.tmp + b"/" + str(ino).encode() + b"/"
            else:
                got = self.prefix(p) + n + b"/"
            self.prefixes[ino] = got
        return got

    def _move(self, ino: int, to: tuple[int, bytes], ops: list[Op]) -> None:
        if ino in self.where:
            self.prefixes.clear()
            self.prefixes[ROOTINO] = b"./"
            ops.append(Forget())
        self.where[ino] = to

    def _parked(self, ino: int) -> bytes:
        return self.tmp + b"/%d" % ino

    def plan(self, park_changed: bool) -> RebuildPlan:
        ops: list[Op] = []
        is_old_dir = self.old.is_dir
        # (a first -r has no old tree: nothing to compare, keep or remove)
        old_set = set(self.old_edges)
        new_set = set(self.new_edges) if old_set else set()
        new_nodes = {c for _, _, c in self.new_edges} | {ROOTINO} if old_set else {ROOTINO}
        kept = {e for e in old_set & new_set if self._survives(e[2])}
        for p, n, c in self.old_edges:
            if is_old_dir(c):
                self.where.setdefault(c, (p, n))
        leaf_at: dict[int, tuple[int, bytes]] = {}
        for p, n, c in kept:
            if not is_old_dir(c):
                leaf_at[c] = (p, n)
        removed = [e for e in self.old_edges if e not in kept]
        if removed:
            ops.append(MakeTmp(self.tmp))
        doomed = self._remove_old_leaves(removed, new_nodes, leaf_at, park_changed, ops)
        self._remove_old_nodes(doomed, ops)
        del old_set, new_set, new_nodes, removed
        leaves = self._node_updates(kept, leaf_at, ops)
        del kept, leaf_at
        ops.append(DropTmp(self.tmp))
        fixes = self._dir_fixes()
        ops += [Say("Extract new leaves."), Say("Check pointing the restore"), Checkpoints(fixes),
                ExtractLeaves(leaves), AddLinks(), Say("Set directory mode, owner, and times."),
                DropParked(self.tmp), SetDirModes(fixes), CheckEnd(), Say("Check the symbol table."),
                Say("Check pointing the restore"), SaveTable()]
        return RebuildPlan(self.new, ops)

    def _remove_old_leaves(self, removed: Iterable[tuple[int, bytes, int]], new_nodes: set[int],
                           leaf_at: dict[int, tuple[int, bytes]], park_changed: bool, ops: list[Op]) -> list[int]:
        """The names that went: a surviving node parked, a changed leaf put
        aside, a deleted leaf removed; the directories that went are returned."""
        is_old_dir = self.old.is_dir
        parked: set[int] = set()
        doomed_dirs = []
        for p, n, c in removed:
            survives = self._survives(c) and c in new_nodes
            rel = self.prefix(p) + n
            if survives and is_old_dir(c):
                ops.append(ParkDir(rel, self._parked(c), c, self.tmp_name))
                self._move(c, (_TMP, b""), ops)
            elif survives and c not in leaf_at:
                ops.append(Park(rel, self._parked(c)))
                leaf_at[c] = (_TMP, b"")
            elif is_old_dir(c):
                doomed_dirs.append(c)
            elif park_changed and c not in parked and self._changed_leaf(c) and c in new_nodes:
                ops.append(ParkChanged(rel, self._parked(c), c))
                parked.add(c)
            else:
                ops.append(RemoveLeaf(rel))
        return doomed_dirs

    def _remove_old_nodes(self, doomed: list[int], ops: list[Op]) -> None:
        """The directories that went, with what is left in them."""
        for c in doomed:
            ops += [RemoveNode(self.prefix(c)[:-1]), Forget()]

    def _node_updates(self, kept: set[tuple[int, bytes, int]], leaf_at: dict[int, tuple[int, bytes]],
                      ops: list[Op]) -> dict[int, list[bytes]]:
        """The new names, top-down: parked directories moved back, new ones
        made, unchanged leaves linked, unreferenced names found; returns the
        dumped leaves to extract with their names."""
        leaf_names: dict[int, list[bytes]] = {}
        linked: list[int] = []  # inodes of more than one name
        new_dirs, dumped, where, prefixes = self.new.dirs, self.dumped, self.where, self.prefixes
        for edge in self.new_edges:
            if kept and edge in kept:
                continue
            p, n, c = edge
            is_dir = c in new_dirs
            if is_dir and c in where and where[c][0] == _TMP:
                ops.append(MoveBack(self._parked(c), self.prefix(p) + n, c, self.tmp_name))
                self._move(c, (p, n), ops)
            elif is_dir:
                self._move(c, (p, n), ops)
                ops.append(MakeDir(self.prefix(p) + n))
            elif c in dumped:
                path = (prefixes.get(p) or self.prefix(p)) + n
                names = leaf_names.get(c)
                if names is None:
                    leaf_names[c] = [path]
                else:
                    names.append(path)
                    linked.append(c)
            elif c in leaf_at:
                lp, ln = leaf_at[c]
                src = self._parked(c) if lp == _TMP else self.prefix(lp) + ln
                ops.append(Link(src, self.prefix(p) + n))
            else:
                ops.append(Unreferenced(self.prefix(p) + n, c))
        # what the planning needed goes before the leaves stream in (peak memory)
        self.new_edges = self.old_edges = []
        self.old = SymbolTable()
        for c in linked:  # the name restore extracts first, the others linked to it
            leaf_names[c] = self.tree.in_walk_order(leaf_names[c])
        return leaf_names

    def _dir_fixes(self) -> list[DirFix]:
        """Directories: the dumped ones get their attributes, the others their times back."""
        dir_paths = {ino: self.prefix(self.where[ino][0]) + self.where[ino][1]
                     for ino in self.new.dirs if ino != ROOTINO and ino in self.where}
        dir_paths[ROOTINO] = b"."
        fixes = []
        for ino, path in dir_paths.items():
            node = self.dirs.get(ino)
            if node is not None:
                d = node.dinode
                fixes.append(DirFix(path, d.atime_ns, d.mtime_ns, d.uid, d.gid, d.mode, list(node.xattrs)))
            elif ino in self.new.dir_times:
                fixes.append(DirFix(path, *self.new.dir_times[ino]))
        return fixes
