"""``restore -C``: the image against the tree on disk (restore's compare).

As restore compares: the leaves in image order, each name of each inode
(its mode with its type, owner, data or link target or device, extended
attributes), then the dumped directories' mode, owner and attributes.
Each difference is one line ``path: what``; ``-L`` stops at a number of
them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from .directories import DirNode
from .extraction import SYMLINK_MAX, lstat_or_none
from .format import TP_BSIZE, Dinode, RecordType, Segment, decode_dev, assemble_file, iter_file_slices
from .filer_objects import FilerObjects
from .format.pass5 import EXT_PASS5
from .image_reader import ImageReader
from .restore_options import Options
from .restore_report import Report


class _LimitReached(Exception):
    """-C reached the compare errors -L allows (restore stops there)."""


class Compare:
    """One compare of what *image* brings (its directories read) with the
    nodes *at* gives for its ``./path`` names (``None``: a symbolic link is in
    the way); the lines go to *report*, and *limit* (``-L``, 0: none) stops it."""

    def __init__(self, image: ImageReader, report: Report, at: Callable[[bytes], str | None], limit: int = 0) -> None:
        self.image = image
        self.report = report
        self.at = at
        self.limit = limit
        #: the compare errors so far (restore's count)
        self.diffs = 0
        #: -L stopped it
        self.limit_reached = False
        #: (inode, path, node, xattrs on the image) of leaves with more xattrs on disk than in their
        #: EA record: compared again once Pass V is read
        self._later: list[tuple[int, bytes, str, list[tuple[bytes, bytes]]]] = []
        self._pass5 = FilerObjects([], report, Options())

    def run(self) -> int:
        """Compare; the number of compare errors."""
        try:
            self._leaves()
            self._pass5 = FilerObjects(self.image.pass5, self.report, Options())
            self._deferred_xattrs()
            self.report.verbose("Compare directories modes, owner, attributes.")
            self._directories()
            self._pass5.compare(self.at, self.image.tree.names(), self._differs)
        except _LimitReached:
            self.limit_reached = True
        return self.diffs

    def _counted(self) -> None:
        self.diffs += 1
        if self.limit and self.diffs >= self.limit:
            raise _LimitReached

    def _differs(self, path: bytes, what: str) -> None:
        self.report.tell(f"{os.fsdecode(path)}: {what}")
        self._counted()

    def _stat(self, path: bytes) -> tuple[str, os.stat_result] | None:
        full = self.at(path)
        if full is None:
            self._differs(path, "a symbolic link is in its path (not followed)")
            return None
        st = lstat_or_none(full)
        if st is None:
            self.report.note(f"unable to stat {os.fsdecode(path)}: No such file or directory")
            self._counted()
            return None
        return full, st

    def _leaves(self) -> None:
        image = self.image
        names = image.tree.names()
        while (rec := image.records.pop()) is not None:
            h = rec.header
            if h.c_type == RecordType.TS_END:
                image.ended = True
                break
            if h.c_type != RecordType.TS_INODE or h.is_extattr:
                if h.c_type == RecordType.TS_INODE and h.c_extattributes == EXT_PASS5:
                    image.take_pass5(rec)
                continue
            ino = h.c_inumber
            paths = names.get(ino, [])
            records = [rec] + list(image.same_inode_addrs(ino))
            xattrs = image.xattrs_after(ino)
            if h.c_dinode.file_type == stat.S_IFSOCK:
                for path in paths:
                    self.report.verbose(f"skipped socket {os.fsdecode(path)}")
                continue
            for path in paths:
                found = self._stat(path)
                if found is None:
                    continue
                full, st = found
                self.report.verbose(f"comparing {os.fsdecode(path)} (size: {st.st_size}, mode: 0{h.c_dinode.mode:o})")
                whats = compare_meta(h.c_dinode, st)
                if stat.S_IFMT(st.st_mode) == h.c_dinode.file_type:
                    whats += compare_data(h.c_dinode, st, full, records)
                xwhats = compare_xattrs(full, xattrs)
                if xwhats and _more_on_disk(full, xattrs):
                    self._later.append((ino, path, full, xattrs))  # Pass V (read last) may hold the others
                    xwhats = []
                for what in whats + xwhats:
                    self._differs(path, what)

    def _deferred_xattrs(self) -> None:
        """The leaves' xattrs, with what Pass V adds to them (read after the files)."""
        later, self._later = self._later, []
        for ino, path, full, xattrs in later:
            for what in compare_xattrs(full, xattrs + self._pass5.xattrs_of(ino), self._pass5.ignored(ino)):
                self._differs(path, what)

    def _directories(self) -> None:
        names = self.image.tree.names()
        dirs: dict[int, DirNode] = self.image.dirs
        for ino, node in dirs.items():
            if ino not in self.image.dumped:
                continue
            for path in names.get(ino, ()):
                found = self._stat(path)
                if found is not None:
                    self.report.verbose(f"comparing directory {os.fsdecode(path)}")
                    for what in compare_meta(node.dinode, found[1]) + compare_xattrs(
                            found[0], node.xattrs + self._pass5.xattrs_of(ino), self._pass5.ignored(ino)):
                        self._differs(path, what)


def compare_meta(d: Dinode, st: os.stat_result) -> list[str]:
    """restore -C's lines for the mode (with the type) and owner of one node."""
    out = []
    mode = d.mode if not stat.S_ISLNK(d.mode) else st.st_mode  # a link's mode is not compared
    if st.st_mode != mode:
        out.append(f"mode changed from 0{d.mode & 0o7777:o} to 0{st.st_mode & 0o7777:o}.")
    if st.st_uid != d.uid:
        out.append(f"uid changed from {d.uid} to {st.st_uid}.")
    if st.st_gid != d.gid:
        out.append(f"gid changed from {d.gid} to {st.st_gid}.")
    return out


def compare_xattrs(full: str, xattrs: list[tuple[bytes, bytes]], ignored: frozenset[bytes] = frozenset()) -> list[str]:
    """restore -C's lines for the extended attributes of one node (*ignored*: names on
    disk compared elsewhere)."""
    out = []
    try:
        on_disk = {os.fsencode(n): os.getxattr(full, n, follow_symlinks=False)
                   for n in os.listxattr(full, follow_symlinks=False) if os.fsencode(n) not in ignored}
    except OSError:
        on_disk = {}
    tape = {n: v for n, v in xattrs if n not in ignored}
    if len(on_disk) != len(tape):
        out.append(f"file does not have the same number of attributes ({len(on_disk)}) as the tape ({len(tape)}).")
    else:
        for n, v in tape.items():
            if n not in on_disk:
                out.append(f"EA {os.fsdecode(n)} from tape not found on disk")
            elif on_disk[n] != v:
                out.append(f"EA {os.fsdecode(n)} value changed from {_ea_text(v)} on tape to "
                           f"{_ea_text(on_disk[n])} on disk")
    return out


def _more_on_disk(full: str, xattrs: list[tuple[bytes, bytes]]) -> bool:
    try:
        return len(os.listxattr(full, follow_symlinks=False)) > len(xattrs)
    except OSError:
        return False


def _ea_text(value: bytes) -> str:
    return value.rstrip(b"\0").decode("utf-8", "replace")


def compare_data(d: Dinode, st: os.stat_result, full: str, records: list[Segment]) -> list[str]:
    """restore -C's line for the contents of one node of the same type on disk."""
    if records[0].header.is_metaonly:
        return []  # no data on the image to compare (dump -m)
    if d.file_type in (stat.S_IFCHR, stat.S_IFBLK):
        major, minor = decode_dev(d.rdev)
        if os.major(st.st_rdev) != major or os.minor(st.st_rdev) != minor:
            return [f"device changed from {major},{minor} to {os.major(st.st_rdev)},{os.minor(st.st_rdev)}."]
        return []
    if d.file_type == stat.S_IFLNK:
        if d.size > SYMLINK_MAX:
            return [f"symbolic link of {d.size} bytes on the image: its header is damaged"]
        try:
            on_disk, on_tape = os.fsencode(os.readlink(full)), assemble_file(records)
        except OSError as exc:
            return [f"cannot read link: {exc.strerror}"]
        if on_disk != on_tape:
            return [f"symbolic link changed from {os.fsdecode(on_tape)} to {os.fsdecode(on_disk)}."]
        return []
    if d.file_type != stat.S_IFREG:
        return []
    # as restore compares: piece by piece in image order, a short read is a
    # size change, then anything left on disk after the image's data is one too
    try:
        with open(full, "rb") as f:
            for offset, block in iter_file_slices(records):
                if offset >= d.size:
                    break
                want = (block if block is not None else bytes(TP_BSIZE))[:min(TP_BSIZE, d.size - offset)]
                f.seek(offset)
                got = f.read(len(want))
                if len(got) != len(want):
                    return ["size has changed."]
                if got != want:
                    return ["tape and disk copies are different"]
    except OSError as exc:
        return [f"cannot read: {exc.strerror}"]
    if st.st_size != d.size:
        return ["size has changed."]
    return []
