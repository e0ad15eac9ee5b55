"""pyrestore's rules for its target (issue 13): ``--rename OLD=NEW``, the
free space and inode check before writing (``--force`` skips it), and the
offset map a ``-x`` of named files seeks with (:mod:`dumptool.offsetmap`).

Each function is one rule; :class:`~dumptool.restore.Restore` calls them
(an existing file of the same name is overwritten and an existing
directory is kept with its other contents: that is the extraction's own way).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable

from .directories import norm
from .format import Header, QfaMap
from .offsetmap import HistoryLocator, OffsetMap, StaleHistory
from .restore_report import Report, RestoreError

#: Room a restore leaves free on its target beyond its data (the seed's 100 MB).
ROOM_MARGIN = 100 * 1000 * 1000


class Renames:
    """``--rename OLD=NEW``'s moves: every name at or under OLD lands at or under NEW."""

    def __init__(self, renames: list[tuple[str, str]]) -> None:
        self.moves = [(norm(old), norm(new)) for old, new in renames]
        #: the OLDs that moved a name so far
        self.used: set[bytes] = set()

    def moved(self, path: bytes, *, mark: bool = True) -> bytes:
        """Where the image's ``./path`` lands (the first OLD it is at or under; *mark*: that
        OLD counts as used)."""
        for old, new in self.moves:
            if path == old or path.startswith(old + b"/"):
                if mark:
                    self.used.add(old)
                return new + path[len(old):]
        return path

    def origin(self, landed: bytes) -> bytes:
        """The image's ``./path`` of a name that landed at ``./landed``."""
        landed = norm(landed)
        for old, new in self.moves:
            if landed == new or landed.startswith(new + b"/"):
                was = old + landed[len(new):]
                if self.moved(was, mark=False) == landed:
                    return was
        return landed


def renamed(renames: list[tuple[str, str]], leaf_names: dict[int, list[bytes]], dir_paths: dict[int, bytes],
            make_dir: Callable[[bytes], None], warn: Callable[[str], None]
            ) -> tuple[dict[int, list[bytes]], dict[int, bytes]]:
    """``--rename OLD=NEW``: every name at or under OLD lands at or under NEW
    instead; NEW's parents are made with *make_dir* (a ``./path``).  An OLD
    that names nothing extracted is said through *warn*."""
    r = Renames(renames)
    moves, used, moved = r.moves, r.used, r.moved
    leaves = {ino: [moved(p) for p in paths] for ino, paths in leaf_names.items()}
    dirs = {ino: moved(p) for ino, p in dir_paths.items()}
    for (old, new), given in zip(moves, renames):
        if old not in used:
            warn(f"--rename {given[0]}={given[1]}: nothing extracted is at or under {os.fsdecode(old)}")
    made = set(dirs.values())
    for old, new in moves:
        if old not in used:
            continue
        parts = new.split(b"/")[1:-1]
        for i in range(1, len(parts) + 1):
            parent = b"/".join([b"."] + parts[:i])
            if parent not in made:
                made.add(parent)
                make_dir(parent)
    return leaves, dirs


def data_to_restore(header: Header | None, image: str, *, tape: bool, leaves: Iterable[int] | None,
                    use_history: bool) -> int:
    """The bytes a restore of the inodes *leaves* (None: all) writes: the
    sizes the offset map gives, else the size of *image* when it is a file,
    else 0 (unknown: the check keeps the margin alone)."""
    if header is not None and use_history:
        try:
            found = OffsetMap.find(header, tape=tape)
            if found is not None:
                try:
                    found.check(header)
                    chosen = found.entries() if leaves is None else filter(None, map(found.entry, leaves))
                    return sum(e.size for e in chosen)
                finally:
                    found.close()
        except (StaleHistory, ValueError, IndexError):  # no sizes: the image's size stands for them
            pass
    try:
        st = os.stat(image)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def check_room(target: str, data: int, names: int) -> None:
    """:class:`RestoreError` (one line) when *target* has less room than
    *data* + :data:`ROOM_MARGIN`, or fewer free inodes than *names*."""
    try:
        fs = os.statvfs(target)
    except OSError:
        return  # check_writable says what is wrong
    free = fs.f_bavail * fs.f_frsize
    need = data + ROOM_MARGIN
    if free < need:
        raise RestoreError(f"{target}: {free // (1 << 20)} MiB free, the restore needs "
                           f"{-(-need // (1 << 20))} MiB ({-(-data // (1 << 20))} MiB of data + 100 MiB): "
                           "make room, or restore with --force (as much as fits)")
    if fs.f_files and fs.f_favail < names:
        raise RestoreError(f"{target}: {fs.f_favail} free inodes, the restore makes {names}: "
                           "make room, or restore with --force (as much as fits)")


def history_locator(header: Header | None, *, tape: bool, leaves: Iterable[int],
                    report: Report, purpose: str = "going straight to each file",
                    instead: str = "reading the whole image") -> HistoryLocator | None:
    """The offset map kept for the image of *header*, as the seeks of ``-x``
    ask it for *leaves*; None when there is none, or (one warning: the image
    is read whole) when it is not of this image."""
    if header is None:
        return None
    try:
        found = OffsetMap.find(header, tape=tape)
        if found is None:
            return None
        try:
            found.check(header)
            locator = found.locator(leaves)
        finally:
            found.close()
    except StaleHistory as exc:
        report.warn(f"{exc.message}: {instead}")
        return None
    report.verbose(f"file history {found.path}: {purpose}")
    return locator


def pass5_locator(qfa: QfaMap | HistoryLocator, header: Header | None, *, tape: bool, file_history: bool,
                  report: Report) -> QfaMap | HistoryLocator | None:
    """Where ``-x -Q`` finds the image's Pass V after its files: the QFA file's own
    position (``pydump -Q`` writes it), else the image's offset map's, else
    nowhere (None: the extract reads on to the end, with one ``-v`` line)."""
    if qfa.pass5 is not None or qfa.pass5_unplaced:
        return qfa
    if file_history:
        history = history_locator(header, tape=tape, leaves=(), report=report,
                                  purpose="where Pass V starts (the QFA file does not say)",
                                  instead="reading on to the end of the image for Pass V")
        if history is not None:
            return history
    report.verbose("the QFA file does not say where Pass V starts and no file history of this image is "
                   "found: reading on to the end of the image for Pass V")
    return None
