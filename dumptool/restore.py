"""The restore engine: read an image, then list, extract, rebuild or compare.

An image is read once, front to back (dump-format.md sections 3 and 12.2):
the volume header, the two inode maps, every dumped directory (kept in
memory to name things), then the non-directories in inode order, streamed
to disk slice by slice.  :class:`Restore` is the door; the rooms behind it
are laid out as FreeBSD's restore:

* :mod:`~dumptool.volume_input` and :mod:`~dumptool.image_reader` read the
  image (tape.c): volumes stitched together, the records of each inode;
* :mod:`~dumptool.directories` holds the image's directories (dirs.c);
* :mod:`~dumptool.extraction` writes files under the target (``-x``);
* :mod:`~dumptool.rebuild_plan` plans ``-r`` as restore.c's named passes and
  :mod:`~dumptool.rebuild` carries the plan out (the one place ``-N`` is asked),
  with its checkpoints for ``-R``;
* :mod:`~dumptool.compare` is ``-C``.

:meth:`Restore.list` is ``-t``, :meth:`Restore.extract` is ``-x``,
:meth:`Restore.rebuild` is ``-r``, :meth:`Restore.resume` is ``-R`` and
:meth:`Restore.compare` is ``-C``.  The engine prints nothing: it says its
lines through the callbacks it is given (:class:`~dumptool.restore_report.Report`).
A damaged image is resynced at the next good header; what was lost is
reported and :attr:`Restore.failed` is set so that the CLI exits non-zero.
"""

from __future__ import annotations

import functools
import gc
import os
import time
from collections.abc import Callable, Iterable, Iterator

from .compare import Compare
from .directories import DirNode, EveryInode, Inodes, norm
from .errors import engine_entry
from .extraction import Extracted, Extractor, OutOfSpace, check_writable, say_not_restored
from .filer_objects import FilerTarget, apply_pass5, release_luns
from .format import Header
from .rebuild import Rebuild, base_table
from .rebuild_plan import plan_rebuild, plan_resume
from .restore_options import Options
from .restore_report import Report, RestoreError
from .image_reader import ImageReader
from .offsetmap import HistoryLocator
from .positions import write_positions
from .restore_rules import Renames, check_room, data_to_restore, history_locator, pass5_locator, renamed
from .symtab import SYMTAB_NAME, SymbolTable
from .volume_input import VolumeInput

__all__ = ["DirNode", "Extracted", "Options", "Restore", "RestoreError", "VolumeInput"]


def _gc_paused(method: Callable) -> Callable:
    """Run *method* with the cyclic garbage collector paused.  A pass makes
    next to no reference cycles, but it builds large long-lived tables (the
    directories, the names) that every full collection would walk again,
    a few percent of a restore of many small files; what cyclic garbage
    there is goes at the first collection after."""
    @functools.wraps(method)
    def paused(*args, **kwargs):
        if not gc.isenabled():
            return method(*args, **kwargs)
        gc.disable()
        try:
            return method(*args, **kwargs)
        finally:
            gc.enable()
    return paused


def _closes_tree(method: Callable) -> Callable:
    """Close the descriptors of the target folder (:class:`Beneath`) when *method* ends."""
    @functools.wraps(method)
    def closing(self: "Restore", *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        finally:
            self.extractor.close_tree()
    return closing


def _on_filer(method: Callable) -> Callable:
    """Run *method* (its first argument: the target) in a session with the snapfs volume
    the target is on, if any (:class:`~dumptool.filer_objects.FilerTarget`: locks ignored,
    the LUNs it restores restricted until it ends)."""
    @functools.wraps(method)
    def in_session(self: "Restore", target: str = ".", *args, **kwargs):
        if self.extractor.filer is not None:
            return method(self, target, *args, **kwargs)
        with FilerTarget(target, self.report, self.opts) as filer:
            self.extractor.filer = filer
            try:
                return method(self, target, *args, **kwargs)
            finally:
                self.extractor.filer = None
    return in_session


class Restore:
    """One pass over one image.

    As :class:`~dumptool.dump.Dump`, it prints nothing itself: ``say`` gets
    the lines for standard output (headers, ``-v``), ``warn`` the messages
    for standard error that the program's name prefixes (warnings, errors),
    ``tell`` restore's unprefixed lines for standard error (``-C``'s
    differences, ``-t``'s names not on the tape) and ``listed`` each line of
    ``-t``'s listing (``say`` when not given; the caller ends it, with a
    newline or ``-0``'s NUL).  None given: silent.
    """

    def __init__(self, source: VolumeInput, options: Options | None = None, *,
                 say: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None,
                 tell: Callable[[str], None] | None = None, listed: Callable[[str], None] | None = None) -> None:
        self.input = source
        self._opts = options or Options()
        self.report = Report(say, warn, tell, verbose=lambda: self._opts.verbose)
        self._listed = listed or self.report.say
        self.image = ImageReader(source, self.report)
        self.extractor = Extractor(self.image, self.report, self._opts)
        #: -C stopped at the compare errors -L allows
        self.compare_limit_reached = False
        self._front_reads = 0

    @property
    def opts(self) -> Options:
        return self._opts

    @opts.setter
    def opts(self, options: Options) -> None:
        self._opts = self.extractor.opts = options

    @property
    def extracted(self) -> Extracted | None:
        """What extract passes wrote, kept when set (``-i``'s setmodes)."""
        return self.extractor.extracted

    @extracted.setter
    def extracted(self, extracted: Extracted | None) -> None:
        self.extractor.extracted = extracted

    # -- what went wrong -------------------------------------------------------------

    @property
    def failed(self) -> bool:
        """Whether any error was said: the restore exits 1."""
        return self.report.error_count > 0

    @property
    def error_count(self) -> int:
        return self.report.error_count

    @property
    def not_found(self) -> list[str]:
        """The wanted names the image did not bring (each one an error)."""
        return self.report.not_found

    @property
    def warnings(self) -> int:
        return self.report.warnings

    # -- what the image holds ------------------------------------------------------------

    @property
    def header(self) -> Header | None:
        return self.image.header

    @property
    def in_use(self) -> Inodes:
        return self.image.in_use

    @property
    def dumped(self) -> Inodes:
        return self.image.dumped

    @property
    def dirs(self) -> dict[int, DirNode]:
        return self.image.dirs

    @engine_entry
    @_gc_paused
    def read_directories(self) -> None:
        """Read TS_TAPE, the maps and every directory (restore's first phase)."""
        self.image.read_front()
        self._front_reads = getattr(self.input, "records_read", 0)

    def read_again(self) -> None:
        """Start a new pass from the image's first block (``-i``'s next
        extract): the header, maps and directories are read once more.
        :class:`RestoreError` when the input cannot go back (tape, pipe)."""
        self.image.start_again()

    def tree_edges(self) -> Iterator[tuple[int, bytes, int]]:
        """``(parent, name, child)`` of the image's tree, top-down in dirent order (pre-order)."""
        return self.image.tree.tree_edges()

    def names(self) -> dict[int, list[bytes]]:
        """Every inode on the image's tree with its ``./path`` names, in listing order."""
        return self.image.tree.names()

    def listing(self) -> Iterator[tuple[int, bytes]]:
        """``(inode, ./path)`` as ``restore -t`` lists them: dumped inodes only."""
        return self.image.tree.listing()

    def lookup(self, path: str) -> int | None:
        """The inode of a ``[./]a/b`` name on the image, or ``None``."""
        return self.image.tree.lookup(path)

    def describe(self) -> list[str]:
        """The header lines ``restore -t`` and ``-v`` print."""
        return self.image.describe()

    def selection(self, wanted: Iterable[str] = ()) -> tuple[dict[int, list[bytes]], dict[int, bytes]]:
        """``(leaf inode -> ./names, directory inode -> ./path)`` of what
        extracting *wanted* (everything when empty) covers, with the
        directories leading to each name; a name not on the image is an error."""
        opts = self.opts
        return self.image.tree.selection(wanted, by_inode=opts.by_inode, dir_only=opts.dir_only,
                                         dirs_alone=opts.dirs_alone, missing=self.report.missing)

    # -- -t ----------------------------------------------------------------------------

    @engine_entry
    @_gc_paused
    def list(self, wanted: Iterable[str] = ()) -> None:
        """``-t``: list ``inode<TAB>./path`` for the dumped inodes (under *wanted*)."""
        self.report.verbose("Verify tape and initialize maps")
        self.read_directories()
        wanted = list(wanted)
        prefixes = [norm(w) for w in wanted]
        self._medium_lines()
        for line in self.describe():
            self.report.say(line)
        self.report.verbose("Extract directories from tape")
        self.report.verbose("Initialize symbol table.")
        qfa = self.opts.qfa
        if qfa is not None:
            self.image.check_qfa_date(qfa)
            exact = {e.ino: e for e in qfa.entries}
        rows: Iterable[tuple[int, bytes]] = self.listing()
        if prefixes:  # as restore: name by name, each with what is under it
            every = list(rows)
            first = {}
            for i, (_, path) in enumerate(every):
                first.setdefault(path, i)
            rows = []
            for w, p in zip(wanted, prefixes):
                i = first.get(p)
                if i is None:
                    if self.lookup(w) is None:  # restore's line and status: a listing lists what is there
                        self.report.tell(f"{os.fsdecode(p)} is not on the tape")
                    continue
                j, under = i + 1, p + b"/"
                while j < len(every) and (p == b"." or every[j][1].startswith(under)):  # the walk is depth-first
                    j += 1
                rows.extend(every[i:j])
        verbose, dirs, listed = self.opts.verbose, self.dirs, self._listed
        for ino, path in rows:
            # -v: restore's "dir "/"leaf" before each line; -Q: the volume and
            # position the map gives the inode (0 0 when it has none)
            kind = ("dir " if ino in dirs else "leaf") if verbose else ""
            where = ""
            if qfa is not None:
                entry = exact.get(ino)
                where = f"{entry.volume}\t{entry.position}\t" if entry else "0\t0\t"
            listed(f"{kind}{ino:10d}\t{where}{os.fsdecode(path)}")

    # -- -P ----------------------------------------------------------------------------

    @engine_entry
    @_gc_paused
    def write_qfa(self, name: str, wanted: Iterable[str] = ()) -> None:
        """``-P``: write the QFA file *name* for the named files (all when
        none) from the image, extracting nothing (:mod:`~dumptool.positions`)."""
        self.input.log_records()
        self.read_directories()
        self.report.tell(f"writing QFA positions to {name}")
        leaf_names, _ = self.selection(list(wanted))
        write_positions(name, self.image, self.input, set(leaf_names))
        self.image.check_end(read_rest=True)

    # -- -x ----------------------------------------------------------------------------

    @engine_entry
    @_gc_paused
    def extract(self, target: str, wanted: Iterable[str] = ()) -> None:
        """``-x``: extract the named files and directories (all when none) under *target*."""
        self.report.verbose("Verify tape and initialize maps")
        self.read_directories()
        self._phases("Extract directories from tape", "Initialize symbol table.")
        self.extract_read(target, wanted)

    def _phases(self, *lines: str) -> None:
        """``-v``: the medium's and the header's lines, then restore's phases, in its order."""
        if self.opts.verbose:
            self._medium_lines()
            for line in self.describe() + list(lines):
                self.report.verbose(line)

    def browse(self) -> None:
        """``-i``'s start: the directories read, with restore's ``-v`` lines."""
        self.report.verbose("Verify tape and initialize maps")
        self.read_directories()
        self._phases("Extract directories from tape", "Initialize symbol table.")

    def _medium_lines(self) -> None:
        """``-v``: restore's lines on the medium (:meth:`VolumeInput.medium_lines`)."""
        if self.opts.verbose:
            for line in self.input.medium_lines(self.header, self.opts.input_blocks, self.opts.volumes_not_tape):
                self.report.verbose(line)

    @_gc_paused
    @_closes_tree
    @_on_filer
    def extract_read(self, target: str, wanted: Iterable[str] = ()) -> None:
        """Extract after :meth:`read_directories` (``-x`` and the interactive ``extract``)."""
        check_writable(target, self.opts.dry_run)
        self._check_qfa()
        wanted = list(wanted)
        leaf_names, dir_paths = self.selection(wanted)
        renames = None
        if self.opts.renames:
            leaf_names, dir_paths = renamed(self.opts.renames, leaf_names, dir_paths,
                                            functools.partial(self.extractor.make_dir, target), self.report.warn)
            renames = Renames(self.opts.renames)
            if self.extractor.filer is not None:
                self.extractor.filer.renames = renames
        if not self.opts.force and not self.opts.dry_run:
            self._check_room(target, leaf_names, len(leaf_names) + len(dir_paths))
        given = self.opts.qfa
        history = self._file_history(leaf_names) if given is None and wanted and leaf_names else None
        self.opts.qfa = given or history
        self.opts.pass5_at = history if given is None else pass5_locator(
            given, self.header, tape=self.input.is_tape, file_history=self.opts.file_history, report=self.report)
        try:
            self._extract_selected(target, leaf_names, dir_paths, renames)
        except OutOfSpace as full:
            say_not_restored(self.report, target, full, leaf_names, "the restore stopped")
            self.image.ended = True
            return
        finally:
            self.opts.qfa, self.opts.pass5_at = given, None
        if history is not None or given is not None or (wanted and not self.opts.file_history):
            self._say_reads()  # (not for every -v: its lines are restore's)

    def _file_history(self, leaf_names: dict[int, list[bytes]]) -> HistoryLocator | None:
        """The offset map pydump kept for this image, unless turned off or the medium cannot seek."""
        if not self.opts.file_history or not self.input.can_seek:
            return None
        return history_locator(self.header, tape=self.input.is_tape, leaves=leaf_names, report=self.report)

    def _check_room(self, target: str, leaves: Iterable[int] | None, names: int) -> None:
        data = data_to_restore(self.header, self.input.name, tape=self.input.is_tape, leaves=leaves,
                               use_history=self.opts.file_history)
        check_room(target, data, names)

    def _say_reads(self) -> None:
        """How many records the extract read (those for the directories apart)."""
        count = getattr(self.input, "records_read", None)
        if count is not None:
            self.report.say(f"{count} records read ({self._front_reads} for the volume header, maps and "
                                "directories)")

    def _extract_selected(self, target: str, leaf_names: dict[int, list[bytes]],
                          dir_paths: dict[int, bytes], renames: Renames | None = None) -> None:
        selected = set(leaf_names) | set(dir_paths)  # (the extraction takes the leaves off leaf_names)
        ex = self.extractor
        for ino, path in sorted(dir_paths.items(), key=lambda kv: kv[1].count(b"/")):
            if path != b".":
                ex.make_dir(target, path)
        if ex.extracted is not None:
            ex.extracted.dirs.update(dir_paths)
        self.report.verbose("Extract requested files")
        release_luns(self.image, self.report, self.opts, target, self.extractor.filer)
        try:
            ex.extract_leaves(target, leaf_names)
        except OutOfSpace:
            # what was restored keeps its directories' owners, modes and times
            ex.finish_dirs(target, {ino: p for ino, p in dir_paths.items() if p != b"." or self.opts.set_root_modes})
            raise
        ex.add_links_said()
        apply_pass5(self.image, ex, self.report, self.opts, target, selected.__contains__, renames)
        self.report.verbose("Set directory mode, owner, and times.")
        ex.finish_dirs(target, {ino: p for ino, p in dir_paths.items() if p != b"." or self.opts.set_root_modes})
        self.image.check_end(read_rest=True)

    def _check_qfa(self) -> None:
        qfa = self.opts.qfa
        if qfa is None or self.header is None:
            return
        self.image.check_qfa_date(qfa)
        if not self.input.can_seek:
            self.report.warn(f"{self.input.name} cannot seek: the QFA file is not used")
            self.opts.qfa = None

    @_closes_tree
    def set_modes(self, target: str, dir_paths: dict[int, bytes]) -> None:
        """Owner, mode, xattrs and times again for the files extracted so far
        (:attr:`extracted`) and, deepest first, for the directories in
        *dir_paths* that exist under *target* (``-i``'s setmodes); nothing is read."""
        self.extractor.set_modes(target, dir_paths)

    # -- -r and -R -----------------------------------------------------------------------

    @engine_entry
    @_gc_paused
    @_closes_tree
    @_on_filer
    def rebuild(self, target: str = ".") -> None:
        """``-r``: apply this image to the tree in *target*, keeping ``restoresymtable``.

        A level 0 (``c_ddate`` 0) starts a new table; an incremental needs the
        table of the image it is based on.  Renames, deletions, new entries and
        inode numbers reused for another kind all end as in the source.
        """
        self.report.verbose("Verify tape and initialize maps")
        self.read_directories()
        h = self.header
        assert h is not None
        self._phases("Begin incremental restore" if h.c_ddate else "Begin level 0 restore",
                     "Initialize symbol table.", "Extract directories from tape",
                     "Calculate node updates." if h.c_ddate else "Calculate extraction list.")
        if h.c_ddate and isinstance(self.dumped, EveryInode):
            raise RestoreError("the file dump list of this incremental is lost to damage: -r cannot tell the "
                               "files it changes from the ones it keeps; nothing was changed (extract with -x)")
        old = base_table(h, target)
        check_writable(target, self.opts.dry_run)
        if not self.opts.force and not self.opts.dry_run:
            self._check_room(target, None, sum(len(d.entries) for d in self.dirs.values()))
        plan = plan_rebuild(old, h, self.in_use, self.image.tree, park_changed=not self.opts.dry_run)
        release_luns(self.image, self.report, self.opts, target, self.extractor.filer)
        del old
        run = Rebuild(self.image, self.extractor, self.report, self.opts, target, plan.table,
                      (h.c_date, h.c_ddate, h.c_level))
        run.run(plan.ops)

    @engine_entry
    @_gc_paused
    @_closes_tree
    @_on_filer
    def resume(self, target: str = ".") -> None:
        """``-R``: go on with a ``-r`` that stopped when it asked for another
        volume (killed, or given none); the input must be that volume.

        The checkpoint ``-r`` wrote in ``restoresymtable`` before asking holds
        the names already made, the files still to extract, the one it was
        writing (with the blocks of its record read so far) and the
        directories' attributes; everything before that volume stays as it is.
        """
        table_path = os.path.join(target, SYMTAB_NAME)
        table = SymbolTable.load(table_path)
        rp = table.resume
        if rp is None:
            raise RestoreError(f"{table_path}: no interrupted restore to resume (the last -r finished)")
        check_writable(target, self.opts.dry_run)
        self.image.resume_at(rp)
        self.report.note(f"resuming the restore of the dump of {time.ctime(rp.date)} at volume {rp.volume}")
        run = Rebuild(self.image, self.extractor, self.report, self.opts, target, table, (rp.date, rp.ddate, rp.level))
        run.run(plan_resume(rp))

    # -- -C ----------------------------------------------------------------------------

    @engine_entry
    @_gc_paused
    @_closes_tree
    def compare(self, target: str | None = None) -> int:
        """``-C``: compare the image with the tree under *target* (the dumped
        file system's path on the image when None), as restore -C does: its
        header and ``filesys =`` said, one line per difference told, the
        leaves in image order, then the directories.  Return the number of
        compare errors (restore's count)."""
        self.report.verbose("Begin compare restore")
        self.report.verbose("Verify tape and initialize maps")
        self.read_directories()
        if target is None:
            assert self.header is not None
            target = os.fsdecode(self.header.c_filesys)
        self._medium_lines()
        for line in self.describe():
            self.report.say(line)
        self.report.say(f"filesys = {target}")
        if not os.path.isdir(target):
            raise RestoreError(f"cannot stat directory {target}: no such directory")
        self.report.verbose("Initialize symbol table.")
        self.report.verbose("Extract directories from tape")
        cmp = Compare(self.image, self.report, functools.partial(self.extractor.at_or_none, target),
                      self.opts.compare_limit)
        diffs = cmp.run()
        self.compare_limit_reached = cmp.limit_reached
        if not cmp.limit_reached:
            self.report.verbose("Check the symbol table.")
        return diffs
