"""``-r`` and ``-R`` carried out: the one executor of a rebuild's plan
(:mod:`dumptool.rebuild_plan`), its checkpoints and its symbol table.

:class:`Rebuild` runs each operation in turn: it says the operation's
``-v`` line, and under ``-N`` skips every operation that writes (the one
place ``-N`` is asked).  Before asking for another volume it saves a
checkpoint in ``restoresymtable`` (restore's checkpoint per reel), from
which ``-R`` goes on with that volume.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from collections.abc import Callable, Iterable

from snapdump.numerals import is_decimal

from .filer_objects import apply_pass5
from .extraction import Extractor, OutOfSpace, is_dir, rmtree, say_not_restored
from .format import Header, Segment
from .image_reader import ImageReader
from .rebuild_plan import (
    AddLinks,
    CheckEnd,
    Checkpoints,
    ClearAfterCheckpoint,
    DropParked,
    DropTmp,
    ExtractLeaves,
    FindParked,
    FinishCurrent,
    Forget,
    Link,
    MakeDir,
    MakeTmp,
    MoveBack,
    Op,
    Park,
    ParkChanged,
    ParkDir,
    RemoveLeaf,
    RemoveNode,
    SaveTable,
    Say,
    SetDirModes,
    Unreferenced,
)
from .restore_options import Options
from .restore_report import Report, RestoreError
from .symtab import SYMTAB_NAME, Checkpointed, DirFix, ResumePoint, SymbolTable


def base_table(header: Header, target: str) -> SymbolTable:
    """The symbol table the image of *header* applies to in *target*: a
    new one for a level 0, else the one the image it is based on left
    (:class:`RestoreError` when it is not that one)."""
    if header.c_ddate == 0:
        return SymbolTable()
    table_path = os.path.join(target, SYMTAB_NAME)
    old = SymbolTable.load(table_path)
    if old.resume is not None:
        raise RestoreError(
            f"{table_path} holds an interrupted restore of the dump of {time.ctime(old.resume.date)}: "
            f"finish it first with -R and volume {old.resume.volume} of that dump")
    if old.dump_date != header.c_ddate:
        low = "low" if old.dump_date > header.c_ddate else "high"
        raise RestoreError(
            f"incremental image too {low}: it is based on the dump of {time.ctime(header.c_ddate)}, "
            f"but the last one restored here is of {time.ctime(old.dump_date)}")
    return old


class Rebuild:
    """Runs a plan in *target*: the image's files come from *extractor*,
    *table* is the symbol table the tree will match once the image is
    applied (*applying*: the image's date, base date and level)."""

    def __init__(self, image: ImageReader, extractor: Extractor, report: Report, opts: Options, target: str,
                 table: SymbolTable, applying: tuple[int, int, int]) -> None:
        self.image = image
        self.extractor = extractor
        self.report = report
        self.opts = opts
        self.target = target
        self.table = table
        self.table_path = os.path.join(target, SYMTAB_NAME)
        self.applying = applying
        #: the directories' fixes a checkpoint saves (None: no checkpoint yet: a -r must start again)
        self.dir_plan: list[DirFix] | None = None
        self._handlers: dict[type, Callable] = {
            Say: _nothing, MakeTmp: self._make_tmp, ParkDir: self._park_dir, Park: self._park,
            ParkChanged: self._park_changed, RemoveLeaf: self._remove_leaf, RemoveNode: self._remove_node,
            MoveBack: self._move_back, MakeDir: self._make_dir, Link: self._link, Unreferenced: self._unreferenced,
            Forget: self._forget, DropTmp: self._drop_tmp, Checkpoints: self._checkpoints,
            FindParked: self._find_parked, ClearAfterCheckpoint: self._clear_after_checkpoint,
            FinishCurrent: self._finish_current, ExtractLeaves: self._extract_leaves, AddLinks: self._add_links,
            DropParked: self._drop_parked, SetDirModes: self._set_dir_modes, CheckEnd: self._check_end,
            SaveTable: self._save_table,
        }

    def run(self, ops: Iterable[Op]) -> None:
        """Carry out *ops* in order; ``-N`` skips the ones that write.  A
        full target (``--force``) stops the rest: one error says the tree
        is incomplete, then a line names each file not restored."""
        dry = self.opts.dry_run
        ops = list(ops)
        for n, op in enumerate(ops):
            if self.opts.verbose and (line := op.line) is not None:
                self.report.verbose(line)
            if dry and op.writes:
                continue
            try:
                self._handlers[type(op)](op)
            except OutOfSpace as full:
                if isinstance(op, ExtractLeaves):  # every directory is in place: what was restored keeps
                    for fixes in (o for o in ops[n:] if isinstance(o, SetDirModes)):  # their attributes
                        self._set_dir_modes(fixes)
                # the leaves still to extract (extract_leaves takes off those it did)
                leaves = next((o.leaves for o in ops[n:] if isinstance(o, ExtractLeaves)), {})
                say_not_restored(self.report, self.target, full, leaves,
                                 "the rebuild stopped and the target is incomplete (its restoresymtable is "
                                 "not updated)")
                self.image.ended = True
                return

    def _full(self, rel: bytes) -> str:
        return self.extractor.at(self.target, rel)

    # -- remove old leaves, node updates, find unreferenced links, remove old nodes ----

    def _make_tmp(self, op: MakeTmp) -> None:
        full = self._full(op.rel)
        try:
            os.mkdir(full, 0o700)
        except FileExistsError:
            if not is_dir(full):
                raise RestoreError(f"{os.path.join(self.target, os.fsdecode(op.rel[2:]))} is in the way (not a "
                                   "directory): remove it and run again") from None

    def _away(self, rel: bytes, to: bytes) -> bool:
        """Rename *rel* to *to*; whether it went (else said why)."""
        try:
            os.rename(self._full(rel), self._full(to))
            return True
        except FileNotFoundError:
            self.report.warn(f"{os.fsdecode(rel)}: already gone from the restored tree")
        except OSError as exc:
            self.report.error(f"{os.fsdecode(rel)}: cannot remove or rename: {exc.strerror}")
        return False

    def _park_dir(self, op: ParkDir) -> None:
        self._away(op.rel, op.to)

    def _park(self, op: Park) -> None:
        self._away(op.rel, op.to)

    def _park_changed(self, op: ParkChanged) -> None:
        if self._away(op.rel, op.to):
            self.extractor.parked[op.ino] = op.to

    def _remove_leaf(self, op: RemoveLeaf) -> None:
        try:
            os.unlink(self._full(op.rel))
        except FileNotFoundError:
            self.report.warn(f"{os.fsdecode(op.rel)}: already gone from the restored tree")
        except OSError as exc:
            self.report.error(f"{os.fsdecode(op.rel)}: cannot remove or rename: {exc.strerror}")

    def _remove_node(self, op: RemoveNode) -> None:
        try:
            rmtree(self._full(op.rel))
        except (FileNotFoundError, NotADirectoryError):
            pass  # gone with a directory above it
        except OSError as exc:
            self.report.error(f"{os.fsdecode(op.rel[2:])}: cannot remove: {exc.strerror}")

    def _move_back(self, op: MoveBack) -> None:
        try:
            os.rename(self._full(op.src), self._full(op.rel))
        except OSError as exc:
            self.report.error(f"{os.fsdecode(op.rel)}: cannot move back from {op.tmp_name}: {exc.strerror}")

    def _make_dir(self, op: MakeDir) -> None:
        self.extractor.new_dir(self.target, op.rel)

    def _link(self, op: Link) -> None:
        try:
            full = self._full(op.rel)
            os.link(self._full(op.src), full, follow_symlinks=False)
        except OSError as exc:
            self.report.error(f"{os.fsdecode(op.rel)}: cannot link: {exc.strerror}")

    def _unreferenced(self, op: Unreferenced) -> None:
        self.report.error(f"{os.fsdecode(op.rel)} (inode {op.ino}) is neither on this image nor restored before")

    def _forget(self, _op: Forget) -> None:
        self.extractor.forget()

    def _drop_tmp(self, op: DropTmp) -> None:
        full = self._full(op.rel)
        if is_dir(full) and not self.extractor.parked:
            rmtree(full)
            self.extractor.forget()

    # -- the leaves ------------------------------------------------------------------

    def _extract_leaves(self, op: ExtractLeaves) -> None:
        self.extractor.extract_leaves(self.target, op.leaves)
        image = self.image
        apply_pass5(image, self.extractor, self.report, self.opts, self.target, lambda ino: ino in image.dumped)

    def _add_links(self, _op: AddLinks) -> None:
        self.extractor.add_links_said()

    def _drop_parked(self, op: DropParked) -> None:
        """Remove the parked nodes no metadata-only record took back, once
        the image is done.  An image that did not reach its end keeps them:
        a restore stopped at a volume change for -R (which finds them again
        by inode number), a truncated one because their records may have
        been metadata only."""
        extractor = self.extractor
        tmp_full = self._full(op.rel)
        if not self.image.ended:
            if extractor.parked and not extractor.checkpoint_volume:
                self.report.warn(f"the image ended before the records of {len(extractor.parked)} changed file(s): "
                                 f"their earlier copies are kept in {os.path.basename(tmp_full)}/, named by inode "
                                 "number")
            return
        extractor.parked = {}
        if is_dir(tmp_full):
            rmtree(tmp_full)
            extractor.forget()

    def _set_dir_modes(self, op: SetDirModes) -> None:
        """Owner, mode, xattrs and times of the dumped directories, the times
        of the others, deepest first (restore's setdirmodes)."""
        for fix in sorted(op.dirs, key=lambda f: -f.path.count(b"/")):
            full = self.extractor.at_or_none(self.target, fix.path)
            if full is None:
                self.report.warn(f"{os.fsdecode(fix.path)}: a symbolic link is in its path: attributes not set")
            elif fix.mode is None:
                try:
                    os.utime(full, ns=(fix.atime_ns, fix.mtime_ns), follow_symlinks=False)
                except OSError as exc:
                    self.report.warn(f"{os.fsdecode(fix.path)}: cannot set times: {exc.strerror}")
            elif is_dir(full):
                self.extractor.set_attrs(full, fix.path, fix, fix.xattrs or [])

    def _check_end(self, _op: CheckEnd) -> None:
        self.image.check_end(read_rest=True)

    # -- checkpoints and the table ---------------------------------------------------------

    def _checkpoints(self, op: Checkpoints) -> None:
        self.dir_plan = op.dirs
        self.image.input.on_volume_end = self.checkpoint

    def checkpoint(self, volume: int) -> None:
        """Save -r's progress before asking for *volume* (restore's checkpoint
        per reel), so that ``-R`` can go on from that volume."""
        if self.dir_plan is None:
            return  # still reading directories: a -r must start again
        date, ddate, level = self.applying
        cur = self.extractor.current
        current = None
        if cur is not None:
            fmt = cur.first.header.c_dinode.file_type
            first = cur.first if fmt != stat.S_IFREG else Segment(0, cur.first.header, ())
            current = Checkpointed(cur.ino, cur.paths, first, cur.base, cur.attrs_only, cur.made)
        table = dataclasses.replace(self.table, resume=ResumePoint(
            volume=volume, date=date, ddate=ddate, level=level, byte_order=self.image.input.byte_order.name,
            leaves={ino: list(paths) for ino, paths in self.extractor.pending.items()},
            dirs=list(self.dir_plan), current=current, head=self.image.held_blocks(), tape=self.image.header))
        table.save(self.table_path)
        self.extractor.checkpoint_volume = volume

    def _save_table(self, _op: SaveTable) -> None:
        """Record the image just applied (and no checkpoint) in ``restoresymtable``;
        an image that stopped at a volume change keeps its checkpoint instead."""
        volume = self.extractor.checkpoint_volume
        if not self.image.ended and volume:
            self.report.error(f"the restore stopped before volume {volume}: go on with "
                              f"pyrestore -R -f VOLUME-{volume} in this directory")
            return
        table = self.table
        table.dump_date, table.base_date, table.level = self.applying
        table.resume = None
        table.save(self.table_path)
        root = next((fix for fix in self.dir_plan or () if fix.path == b"."), None)
        if root is not None:  # writing the table touched ".": its times again
            try:
                os.utime(self.target, ns=(root.atime_ns, root.mtime_ns))
            except OSError as exc:
                self.report.warn(f".: cannot set times: {exc.strerror}")

    # -- -R ------------------------------------------------------------------------------

    def _find_parked(self, op: FindParked) -> None:
        tmp_full = self._full(op.rel)
        if is_dir(tmp_full):
            for entry in os.scandir(tmp_full):
                if is_decimal(entry.name) and int(entry.name) in op.leaves and not entry.is_dir(follow_symlinks=False):
                    self.extractor.parked[int(entry.name)] = op.rel + b"/" + os.fsencode(entry.name)

    def _clear_after_checkpoint(self, op: ClearAfterCheckpoint) -> None:
        """Remove what the interrupted -r may have made of the inode it was
        writing *after* its checkpoint (it goes on when told "none"): its
        extra names, and its node when -R makes it again from its first
        record.  Data a checkpoint counts as written stays."""
        cur = op.current
        again = not cur.attrs_only and not cur.base
        for n, path in enumerate(cur.paths):
            if n == 0 and not again:
                continue
            try:
                full = self._full(path)
                if not stat.S_ISDIR(os.lstat(full).st_mode):
                    os.unlink(full)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.report.warn(f"{os.fsdecode(path)}: cannot remove before making it again: {exc.strerror}")

    def _finish_current(self, op: FinishCurrent) -> None:
        cur = op.current
        self.extractor.pending = op.leaves
        self.extractor.write_leaf(self.target, cur.first.header, cur.first, cur.paths,
                                  resume=dataclasses.replace(cur))


def _nothing(_op: Op) -> None:
    pass
