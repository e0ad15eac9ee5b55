"""Writing the image's files under the target folder (restore's extraction:
tape.c's extractfile and restore.c's createleaves, with the attributes).

:class:`Extractor` streams the non-directory records of an
:class:`~dumptool.image_reader.ImageReader` and writes every wanted inode
under its names: a regular file the fastest way when its name is free
(``O_EXCL``, the attributes through its descriptor), anything else the
general way (a device, FIFO, symbolic link or file linked elsewhere at a
regular file's name replaced, never written through: :mod:`.restored_file`);
its other names become hard links.  Every path is resolved
beneath the target folder (:class:`~dumptool.beneath.Beneath`): nothing
outside it is ever created, written or followed.  Attributes go on in
restore's order (owner, mode, xattrs, times); symbolic links get no chmod;
directories get theirs last, deepest first.  A refused attribute is one
warning; files already restored are never removed because of a later error.
"""

from __future__ import annotations

import errno as _errno
import itertools
import os
import stat
from dataclasses import dataclass, field

from .beneath import Beneath
from .format import (
    DR_EXTATTRIBUTES,
    DR_METAONLY,
    TP_BSIZE,
    TP_NINDIR,
    Dinode,
    Head,
    Header,
    RecordType,
    Segment,
    assemble_file,
    decode_dev,
)
from .filer_objects import FilerTarget, snapfs_root
from .format.pass5 import EXT_PASS5
from .image_reader import ImageReader
from .restore_options import Options
from .restore_report import Report, RestoreError
from .restored_file import NEW_FILE, open_to_write, write_all
from .symtab import Checkpointed, DirFix

# the file types _write_new_regular asks about (it creates a file as restored_file's NEW_FILE)
_S_IFMT, _S_IFDIR, _S_IFREG = 0o170000, stat.S_IFDIR, stat.S_IFREG
_TS_ADDR = int(RecordType.TS_ADDR)
#: the filer's records a snapfs mount shows as xattrs but never takes as ones
_FILER_XATTRS = (b"trusted.snapfs.",)

#: The longest symbolic link target (PATH_MAX less its NUL) and the largest file size (off_t):
#: a header saying more is damaged.
SYMLINK_MAX = 4095
_MAX_FILE_SIZE = 2**63 - 1


@dataclass
class Extracted:
    """What the extract passes of one session put on disk (``-i``'s setmodes)."""

    leaves: dict[int, tuple[list[bytes], Dinode, list[tuple[bytes, bytes]]]] = field(default_factory=dict)
    dirs: dict[int, bytes] = field(default_factory=dict)


#: The errors that end a --force restore: the target is full.
_NO_SPACE = (_errno.ENOSPC, _errno.EDQUOT)


class OutOfSpace(RestoreError):
    """The target filled up while *paths* were written (the partial file is removed)."""

    def __init__(self, paths: list[bytes]) -> None:
        super().__init__("no space left on the target")
        self.paths = paths


def say_not_restored(report: Report, target: str, full: OutOfSpace, leaves: dict[int, list[bytes]],
                     stopped: str) -> None:
    """One error for a restore a full target stopped (*stopped* says what
    that leaves), then a ``not restored: ./x`` line for the file being
    written and for each one in *leaves* (those not yet extracted)."""
    left = full.paths[:1] + [paths[0] for _, paths in sorted(leaves.items())]
    report.error(f"{target}: no space left on the target: {stopped}; {len(left)} file(s) not restored:")
    for path in left:
        report.tell(f"not restored: {os.fsdecode(path)}")


def _drop_partial(parent_fd: int, name: bytes) -> None:
    """Remove a file cut short (it must not be left looking restored)."""
    try:
        os.unlink(name, dir_fd=parent_fd)
    except OSError:
        pass


class Extractor:
    """Writes what *image* brings under a target folder; messages go to *report*."""

    def __init__(self, image: ImageReader, report: Report, opts: Options) -> None:
        self.image = image
        self.report = report
        self.opts = opts
        #: What extract passes wrote, kept when set (``-i``'s setmodes): each
        #: leaf inode's ``(names, dinode, xattrs)`` and the directories' paths.
        self.extracted: Extracted | None = None
        #: -r: the old node of each changed leaf, parked until its record
        #: tells whether it is metadata only (``dump -m``: the node stays).
        self.parked: dict[int, bytes] = {}  # inode -> ./RSTTMPdate/inode
        #: the inode being written (what a checkpoint saves), and the leaves still to extract
        self.current: Checkpointed | None = None
        self.pending: dict[int, list[bytes]] = {}
        #: the volume the last checkpoint waits for (0: none; set by -r's checkpoints)
        self.checkpoint_volume = 0
        #: The target folder of the pass under way, every path resolved beneath it.
        self._tree: Beneath | None = None
        #: -v: the "Create hard link" lines of the pass under way, said after "Add links"
        self._link_lines: list[str] = []
        self._leaf_fd: int | None = None  # the regular file _write_regular left open
        self._umask = 0o022
        self._dir_state: dict[bytes, tuple[int, int, int, bool]] = {}  # see _new_file_state
        self._fast_current = Checkpointed(0, [], None)  # type: ignore[arg-type]
        self._skip_xattrs: tuple[bytes, ...] = ()  # xattr names not set on this target (see beneath)
        #: the pass's session with the snapfs volume of its target (set by the Restore), or None
        self.filer: FilerTarget | None = None

    # -- the target folder: nothing outside it is ever created, written or followed ------

    def beneath(self, target: str) -> Beneath:
        """The :class:`Beneath` of *target*, kept until :meth:`close_tree`."""
        tree = self._tree
        if tree is None or tree.target != target:
            if tree is not None:
                tree.close()
            tree = self._tree = Beneath(target)
            # a snapfs mount refuses the filer's records as xattrs: Pass V restores them (filer_objects)
            self._skip_xattrs = _FILER_XATTRS if snapfs_root(target) is not None else ()
        return tree

    def at(self, target: str, rel: bytes) -> str:
        """A path for ``./rel`` under *target* that reaches it through no
        symbolic link (see :class:`Beneath`); ``OSError`` (``ELOOP``) when one
        is in the way.  Its last component is not resolved: use it with
        ``O_NOFOLLOW``, ``lstat``, ``follow_symlinks=False``."""
        return self.beneath(target).path(rel)

    def at_or_none(self, target: str, rel: bytes) -> str | None:
        try:
            return self.at(target, rel)
        except OSError:
            return None

    def forget(self) -> None:
        """Directories were moved or removed: the descriptors kept by path are stale."""
        if self._tree is not None:
            self._tree.forget()

    def close_tree(self) -> None:
        if self._tree is not None:
            self._tree.close()
            self._tree = None

    def set_modes(self, target: str, dir_paths: dict[int, bytes]) -> None:
        """Owner, mode, xattrs and times again for the files extracted so far
        (:attr:`extracted`) and, deepest first, for the directories in
        *dir_paths* that exist under *target* (``-i``'s setmodes); nothing is read."""
        if self.opts.dry_run:
            return
        for paths, d, xattrs in (self.extracted.leaves.values() if self.extracted else ()):
            for path in paths:
                full = self.at_or_none(target, path)
                st = lstat_or_none(full) if full is not None else None
                if st is not None and stat.S_IFMT(st.st_mode) == d.file_type:
                    self.set_attrs(full, path, d, xattrs)
                    break  # the other names are hard links of it
        self.finish_dirs(target, dir_paths)

    # -- writing -----------------------------------------------------------------------

    def make_dir(self, target: str, path: bytes) -> None:
        """Make directory ``./path`` (its parent made before).  A symbolic link
        standing there is replaced by the directory (said in one line): it
        must never lead the restore out of the target folder."""
        self.report.verbose(f"Make node {os.fsdecode(path)}")
        if not self.opts.dry_run:
            self.new_dir(target, path)

    def new_dir(self, target: str, path: bytes) -> None:
        """:meth:`make_dir` without its ``-v`` line and ``-N`` check."""
        try:
            parent, name = self.beneath(target).split(path)
            try:
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                st = os.lstat(name, dir_fd=parent)
                if stat.S_ISLNK(st.st_mode):
                    os.unlink(name, dir_fd=parent)
                    os.mkdir(name, 0o700, dir_fd=parent)
                    self.report.warn(f"{os.fsdecode(path)}: a symbolic link stood where the image has a directory: "
                                     "replaced by the directory")
                elif not stat.S_ISDIR(st.st_mode):
                    if self.opts.unlink:
                        os.unlink(name, dir_fd=parent)
                        os.mkdir(name, 0o700, dir_fd=parent)
                    else:
                        self.report.error(f"{os.fsdecode(path)}: cannot make directory: a file of that name exists")
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise OutOfSpace([path]) from None
            self.report.error(f"{os.fsdecode(path)}: cannot make directory: {exc.strerror}")

    def extract_leaves(self, target: str, leaf_names: dict[int, list[bytes]]) -> None:
        """Stream the non-directory records; write every inode in *leaf_names* under its names."""
        self.pending = leaf_names
        qfa = self.opts.qfa is not None
        wanted = sorted(leaf_names, reverse=True) if qfa else []
        records = self.image.records
        fast = not self.opts.dry_run
        self._umask = os.umask(0o022)
        os.umask(self._umask)
        self._dir_state = {}
        self._fast_current = Checkpointed(0, [], None)  # type: ignore[arg-type]
        tree = self.beneath(target) if fast else None
        ts_inode, ts_end = RecordType.TS_INODE, RecordType.TS_END
        parked = self.parked
        while True:
            if tree is not None:
                tree.trim()
            if qfa:
                if not leaf_names:
                    if self.image.seek_to_pass5(self.opts.pass5_at):
                        qfa = False  # Pass V holds objects of the files taken: read on to the end from it
                        continue
                    self.image.ended = True  # as restore -Q: done once every wanted file is out
                    return
                self.image.seek_to_wanted(self.opts.qfa, wanted, leaf_names)
            rec = records.pop()
            if rec is None:
                break
            head = rec.head
            c_type = head.c_type
            if c_type != ts_inode or head.c_flags & DR_EXTATTRIBUTES:
                if c_type == ts_inode and rec.header.c_extattributes == EXT_PASS5:
                    self.image.take_pass5(rec)
                    continue
                if c_type == ts_end:
                    self.image.ended = True
                    self._report_missing(leaf_names)
                    return
                continue
            ino = head.c_inumber
            paths = leaf_names.pop(ino, None)
            mode = head.mode
            if not paths or mode & _S_IFMT == _S_IFDIR:
                self.image.skip_inode(ino)
                continue
            if parked and ino in parked and not head.c_flags & DR_METAONLY:
                # made anew: the old copy goes first, as restore's
                self.report.verbose(f"Remove leaf {os.fsdecode(paths[0])}")
                self.drop_node(target, parked.pop(ino))
            if fast and mode & _S_IFMT == _S_IFREG and not head.c_flags & DR_METAONLY \
                    and self._write_new_regular(tree, rec, paths):
                continue
            self.write_leaf(target, rec.header, rec, paths)
        # the image ended without TS_END; ImageReader.check_end reports it
        if not self.checkpoint_volume:
            self._report_missing(leaf_names)

    def _report_missing(self, leaf_names: dict[int, list[bytes]]) -> None:
        """One line for each file to extract that the image did not bring
        (restore's "not found on tape"): lost to damage, or passed by a seek."""
        for ino, paths in sorted(leaf_names.items()):
            self.report.missing(f"{os.fsdecode(paths[0])} (inode {ino})")

    def _write_new_regular(self, tree: Beneath, first: Segment, paths: list[bytes]) -> bool:
        """Write a regular file as a new file (``O_EXCL``), with the fewest
        calls: the mode is given at creation and owner and mode are set only
        where creating the file did not already make them right (see
        :meth:`_new_file_state`).  ``False`` when the name cannot be created
        afresh (it exists, or any other error): :meth:`write_leaf` then
        does it the general way and reports what goes wrong."""
        head = first.head
        if head.size > _MAX_FILE_SIZE:
            return False  # a damaged size: the general way says so
        path = paths[0]
        parent, _, name = path.rpartition(b"/")
        mode = head.mode & 0o7777
        try:
            parent_fd = tree.dir_fd(parent)
            fd = os.open(name, NEW_FILE, mode & 0o777, dir_fd=parent_fd)
        except OSError:
            return False
        if self.filer is not None:  # (a LUN is under restriction from its creation on)
            self.filer.hold_new(path)
        ino = head.c_inumber
        if self.opts.verbose:
            self.report.verbose(f"extract file {os.fsdecode(path)}")
        # (one Checkpointed for the pass, refilled: a checkpoint copies it)
        self.current = cur = self._fast_current
        cur.ino, cur.paths, cur.first, cur.base, cur.attrs_only, cur.made = ino, paths, first, 0, False, False
        records = self.image.records
        try:
            size = head.size
            count = head.c_count
            data = first.data
            have = len(data)
            try:
                if 0 < count < TP_NINDIR and have == count * TP_BSIZE and size <= have:
                    # the usual small file: one record, no hole, its data in one write
                    if size:
                        write_all(fd, data[:size] if size < have else data, 0)
                    cur.base = have
                    nxt = records.peek()
                    if nxt is not None and nxt.head.c_inumber == ino and nxt.head.c_type == _TS_ADDR \
                            and self._write_data(fd, None, ino, size, have, path) != size:
                        os.ftruncate(fd, size)  # (more records than c_count said: as _write_data does)
                elif self._write_data(fd, first, ino, size, 0, path) != size:
                    os.ftruncate(fd, size)
                made = True
            except OSError as exc:
                if exc.errno in _NO_SPACE:
                    _drop_partial(parent_fd, name)  # (its descriptor is closed below)
                    raise OutOfSpace(paths) from None
                for _ in self.image.same_inode_addrs(ino):
                    pass
                self.report.error(f"{os.fsdecode(path)}: cannot create: {exc.strerror}")
                made = False
            cur.attrs_only, cur.made = True, made
            # the next record is nearly always the next inode's: one look says so
            nxt = records.peek()
            if nxt is not None and nxt.head.c_inumber == ino and nxt.head.c_flags & DR_EXTATTRIBUTES:
                xattrs = self.image.xattrs_after(ino)
            else:
                xattrs = None
            self.current = None
            if not made:
                return True
            state = self._dir_state.get(parent) or self._new_file_state(fd, parent_fd, parent, mode)
            uid, gid = head.uid, head.gid
            if uid != state[0] or gid != state[1]:
                try:
                    os.fchown(fd, uid, gid)
                except OSError as exc:
                    self.report.warn(f"{os.fsdecode(path)}: cannot set owner {uid}:{gid}: {exc.strerror}")
            if state[3] or mode & state[2]:
                try:
                    os.fchmod(fd, mode)
                except OSError as exc:
                    self.report.warn(f"{os.fsdecode(path)}: cannot set mode {mode:o}: {exc.strerror}")
            if xattrs:
                self.set_attrs(path, path, head, xattrs, fd, owner=False, perms=False)
            else:
                if self.filer is not None:  # (as set_attrs does)
                    self.filer.note(path, stat.S_IFREG | mode, uid, gid, [])
                try:
                    os.utime(fd, ns=(head.atime_sec * 1_000_000_000 + head.atime_usec * 1000,
                                     head.mtime_sec * 1_000_000_000 + head.mtime_usec * 1000))
                except OSError as exc:
                    self.report.warn(f"{os.fsdecode(path)}: cannot set times: {exc.strerror}")
            if self.extracted is not None:
                self.extracted.leaves[ino] = (list(paths), first.header.c_dinode, xattrs or [])
        finally:
            os.close(fd)
        if len(paths) > 1:
            self._link_others(tree.target, paths)
        return True

    def _new_file_state(self, fd: int, parent_fd: int, parent: bytes, mode: int) -> tuple[int, int, int, bool]:
        """``(uid, gid, masked, acl)`` for files created in directory
        *parent*, asked once per directory by looking at the first one (*fd*,
        just created with the permission bits of *mode*): the owner they
        get, the mode bits creation leaves out (the umask and the special
        bits, never given at creation; all when the first file did not come
        out as the umask says) and whether the directory has a default ACL
        (then creation leaves the permission bits to the ACL).  Directories
        keep their mode and ACLs until the leaves are done, so this holds
        for a whole pass."""
        st = os.fstat(fd)
        try:
            acl = bool(os.getxattr(f"/proc/self/fd/{parent_fd}", "system.posix_acl_default"))
        except OSError:
            acl = False
        masked = self._umask | 0o7000
        if not acl and stat.S_IMODE(st.st_mode) != mode & 0o777 & ~masked:
            masked = 0o7777
        state = self._dir_state[parent] = (st.st_uid, st.st_gid, masked, acl)
        return state

    def _write_data(self, fd: int, first: Segment | None, ino: int, size: int, base: int, path: bytes) -> int:
        """Write the data of *first* and the TS_ADDR records of inode *ino*
        after it (only those when *first* is ``None``), the first at byte
        *base*; holes are skipped.  Returns where the last bytes written end."""
        damage_before = self.image.damage_count
        cur = self.current
        high = 0
        rec = first
        if rec is None:
            rec = self.image.next_addr(ino)
        while rec is not None:
            head = rec.head
            count = head.c_count
            entries = head.c_addr[:count] if 0 < count < TP_NINDIR else head.c_addr if count > 0 else b""
            end = base + len(entries) * TP_BSIZE
            if 0 not in entries:
                # no hole: the record's blocks in one go, cut at the size
                data = rec.data
                if end > size:
                    data = data[:max(0, size - base)]
                if data:
                    high = write_all(fd, data, base)
            else:
                high = self._write_holey(fd, rec, entries, base, size) or high
            base = end
            if cur is not None:
                cur.base = base
            rec = self.image.next_addr(ino)
            if rec is not None and self.image.damage_count != damage_before:
                self.report.error(f"{os.fsdecode(path)} (inode {ino}): data after byte {base} lost to damage; "
                                  "the rest of the file reads as holes")
                for _ in self.image.same_inode_addrs(ino):
                    pass
                break
        return high

    @staticmethod
    def _write_holey(fd: int, rec: Segment, entries: bytes, base: int, size: int) -> int:
        """Write a record's data around its holes: each run of contiguous
        blocks in one call.  Returns where the last bytes written end (0: none)."""
        data = rec.data
        high = 0
        at = 0          # next data block in ``data``
        run_at = -1     # file offset of the run being gathered
        run_start = 0   # its start in ``data``
        offset = base
        for entry in entries:
            if offset >= size:
                break
            if entry:
                if run_at < 0:
                    run_at, run_start = offset, at
                at += TP_BSIZE
            elif run_at >= 0:
                high = write_all(fd, data[run_start:at], run_at)
                run_at = -1
            offset += TP_BSIZE
        if run_at >= 0:
            chunk = data[run_start:at]
            if run_at + len(chunk) > size:
                chunk = chunk[:size - run_at]
            high = write_all(fd, chunk, run_at)
        return high

    def write_leaf(self, target: str, h: Header, first: Segment, paths: list[bytes],
                   resume: Checkpointed | None = None) -> None:
        """Write one inode under its names.  *resume* continues one a
        checkpoint caught half done (its data from ``resume.base`` on, or only
        its attributes)."""
        ino = h.c_inumber
        d = h.c_dinode
        path = paths[0]
        fmt = d.file_type
        if self.opts.verbose and fmt != stat.S_IFLNK:  # a link says "Create symbolic link" when made
            what = {stat.S_IFIFO: "fifo", stat.S_IFCHR: "special file", stat.S_IFBLK: "special file"}
            self.report.verbose(f"extract {what.get(fmt, 'file')} {os.fsdecode(path)}")
        made = False
        if self.opts.dry_run:
            self.image.skip_inode(ino)
            return
        try:
            full = self.at(target, path)
        except OSError as exc:
            self.image.skip_inode(ino)
            self.report.error(f"{os.fsdecode(path)}: cannot create: {exc.strerror} (a symbolic link or a file stands "
                              "where the image has a directory)")
            return
        self.current = Checkpointed(ino, paths, first) if resume is None else resume
        try:
            if resume is not None and resume.attrs_only:
                made = resume.made
            elif h.is_metaonly:
                for _ in self.image.same_inode_addrs(ino):
                    pass
                made = self._keep_node(target, full, ino, fmt, path)
            elif fmt == stat.S_IFREG:
                made = self._write_regular(full, h, None if resume else first, path,
                                           resume.base if resume else 0)
            elif fmt == stat.S_IFLNK:
                records = [first] + list(self.image.same_inode_addrs(ino))
                if first.head.c_count == 0:
                    self.report.warn(f"{os.fsdecode(path)}: zero length symbolic link (ignored)")
                elif d.size > SYMLINK_MAX:
                    self.report.error(f"{os.fsdecode(path)} (inode {ino}): a symbolic link of {d.size} bytes: "
                                      "its header is damaged; skipped")
                else:
                    link = assemble_file(records)
                    if 0 in link:
                        self.report.error(f"{os.fsdecode(path)} (inode {ino}): the symbolic link's target holds a NUL "
                                          "byte: damaged; skipped")
                    else:
                        self.report.verbose(f"Create symbolic link {os.fsdecode(path)}->{os.fsdecode(link)}")
                        self._clear(full)
                        os.symlink(link, full)
                        made = True
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
                for _ in self.image.same_inode_addrs(ino):
                    pass
                self._clear(full)
                major, minor = decode_dev(d.rdev)
                os.mknod(full, fmt | 0o600, os.makedev(major, minor) if fmt in (stat.S_IFCHR, stat.S_IFBLK) else 0)
                made = True
            else:
                for _ in self.image.same_inode_addrs(ino):
                    pass
                self.report.error(f"{os.fsdecode(path)} (inode {ino}): unknown file type {fmt:#o} (a damaged header), "
                                  "skipped")
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                fd, self._leaf_fd = self._leaf_fd, None
                if fd is not None:
                    os.close(fd)
                try:
                    os.unlink(full)  # a file cut short is not left looking restored
                except OSError:
                    pass
                raise OutOfSpace(paths) from None
            for _ in self.image.same_inode_addrs(ino):
                pass
            self.report.error(f"{os.fsdecode(path)}: cannot create: {exc.strerror}")
        self.current.attrs_only, self.current.made = True, made
        # a regular file just written is still open: its attributes go on
        # through the descriptor (no path lookups)
        fd, self._leaf_fd = self._leaf_fd, None
        try:
            xattrs = self.image.xattrs_after(ino)
            self.current = None
            if not made:
                return
            self.set_attrs(full, path, d, xattrs, fd)
            if self.extracted is not None:
                self.extracted.leaves[ino] = (list(paths), d, xattrs)
        finally:
            if fd is not None:
                os.close(fd)
        self._link_others(target, paths, fmt == stat.S_IFREG)

    def _keep_node(self, target: str, full: str, ino: int, fmt: int, path: bytes) -> bool:
        """A metadata-only inode (``dump -m``): the node restored before
        keeps its data and gets the new attributes.  Under -r it is the one
        parked when its old names went, moved to *full*; otherwise whatever
        of that kind is at *full*.  False when there is none (as restore,
        which then has nothing to apply them to)."""
        parked_rel = self.parked.pop(ino, None)
        if parked_rel is not None:
            try:
                parked = self.at(target, parked_rel)
                if stat.S_IFMT(os.lstat(parked).st_mode) == fmt:
                    self._clear(full)
                    os.rename(parked, full)
                    return True
            except (FileNotFoundError, NotADirectoryError):
                pass
        try:
            if stat.S_IFMT(os.lstat(full).st_mode) == fmt:
                return True
        except FileNotFoundError:
            pass
        self.report.verbose(f"file {os.fsdecode(path)} is metadata only: no earlier copy to apply it to")
        return False

    def drop_node(self, target: str, rel: bytes) -> None:
        try:
            os.unlink(self.at(target, rel))
        except OSError as exc:
            self.report.warn(f"{os.fsdecode(rel)}: cannot remove the old copy: {exc.strerror}")

    def add_links_said(self) -> None:
        self.report.verbose("Add links")
        for line in self._link_lines:
            self.report.verbose(line)
        self._link_lines = []

    def _link_others(self, target: str, paths: list[bytes], regular: bool = True) -> None:
        """Make ``paths[1:]`` hard links of ``paths[0]`` (the inode's first
        name).  A *regular* file's other names replace what stands there
        (as its first name does, see ``open_to_write``: an existing file is
        overwritten), other kinds' only under -u (as restore)."""
        for other in paths[1:]:
            if self.opts.verbose:  # said after "Add links", where restore makes them
                self._link_lines.append(f"Create hard link {os.fsdecode(other)}->{os.fsdecode(paths[0])}")
            try:
                ofull = self.at(target, other)
                self._clear(ofull, regular)
                os.link(self.at(target, paths[0]), ofull, follow_symlinks=False)
            except OSError as exc:
                self.report.error(f"{os.fsdecode(other)}: cannot link to {os.fsdecode(paths[0])}: {exc.strerror}")

    def _clear(self, full: str, always: bool = False) -> None:
        """Make room for a new node: remove an old non-directory (restore's -u, or *always*)."""
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise OSError(_errno.EISDIR, "a directory of that name exists")
        if not (self.opts.unlink or always):
            raise OSError(_errno.EEXIST, "file exists (use -u to replace it)")
        os.unlink(full)

    def _write_regular(self, full: str, h: Header, first: Segment | None, path: bytes, base: int = 0) -> bool:
        """Write a regular file's data; *first* ``None`` goes on with a file
        whose bytes before *base* a checkpointed restore already wrote."""
        ino = h.c_inumber
        d = h.c_dinode
        if self.opts.unlink and first is not None:
            self._clear(full)
        fd = open_to_write(full, fresh=first is not None)
        try:
            if self.filer is not None and first is not None:
                self.filer.hold_new(path)
            size = d.size
            if size > _MAX_FILE_SIZE:
                self.report.error(f"{os.fsdecode(path)} (inode {ino}): a size of {size} bytes is impossible (a damaged "
                                  "header): only the data blocks on the image are restored")
                self._write_data(fd, first, ino, _MAX_FILE_SIZE, base, path)
                size = -1
            else:
                high = self._write_data(fd, first, ino, size, base, path)
            if size >= 0 and (first is None or high != size):
                os.ftruncate(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self._leaf_fd = fd  # _write_leaf sets the attributes through it, then closes it
        return True


    def finish_dirs(self, target: str, dir_paths: dict[int, bytes]) -> None:
        """Owner, mode, xattrs and times of the directories, deepest first (restore's setdirmodes)."""
        if self.opts.dry_run:
            return
        for ino, path in sorted(dir_paths.items(), key=lambda kv: -kv[1].count(b"/")):
            node = self.image.dirs.get(ino)
            if node is None:
                continue
            full = self.at_or_none(target, path)
            if full is not None and is_dir(full):
                self.set_attrs(full, path, node.dinode, node.xattrs)


    def set_attrs(self, full: "str | bytes", path: bytes, d: "Dinode | DirFix | Head",
                   xattrs: list[tuple[bytes, bytes]], fd: int | None = None, *,
                   owner: bool = True, perms: "bool | int" = True) -> None:
        """Owner, mode, xattrs and times of *full* (through *fd*, open on it,
        if given).  Without *owner* or *perms* the owner or the mode is known
        to be right already and is not set."""
        mode = d.mode
        if self.filer is not None:  # a snapfs target: its qtree's security style may apply (filer_objects)
            self.filer.note(path, mode, d.uid, d.gid, xattrs)
        if owner:
            try:
                if fd is None:
                    os.chown(full, d.uid, d.gid, follow_symlinks=False)
                else:
                    os.fchown(fd, d.uid, d.gid)
            except OSError as exc:
                self.report.warn(f"{os.fsdecode(path)}: cannot set owner {d.uid}:{d.gid}: {exc.strerror}")
        if perms and not stat.S_ISLNK(mode):
            try:
                if fd is None:
                    chmod_nofollow(full, stat.S_IMODE(mode))
                else:
                    os.fchmod(fd, stat.S_IMODE(mode))
            except OSError as exc:
                self.report.warn(f"{os.fsdecode(path)}: cannot set mode {stat.S_IMODE(mode):o}: {exc.strerror}")
        for xname, value in xattrs:
            if self._skip_xattrs and xname.startswith(self._skip_xattrs):
                continue
            try:
                if fd is None:
                    os.setxattr(full, xname, value, follow_symlinks=False)
                else:
                    os.setxattr(fd, xname, value)
            except OSError as exc:
                # an xattr not restored is metadata lost (an NT ACL, DOS attributes): the restore exits 1
                self.report.error(f"{os.fsdecode(path)}: cannot set extended attribute {os.fsdecode(xname)}: "
                                  f"{exc.strerror}")
        try:
            if fd is None:
                os.utime(full, ns=(d.atime_ns, d.mtime_ns), follow_symlinks=False)
            else:
                os.utime(fd, ns=(d.atime_ns, d.mtime_ns))
        except OSError as exc:
            self.report.warn(f"{os.fsdecode(path)}: cannot set times: {exc.strerror}")


def rmtree(path: str) -> None:
    """Remove the tree *path*, as far as it goes."""
    import shutil  # only an incremental removes trees: not imported for every run

    shutil.rmtree(path, ignore_errors=True)


def chmod_nofollow(path: "str | bytes", mode: int) -> None:
    """chmod of *path* itself: a symbolic link put there since is not followed
    (through an ``O_PATH`` descriptor of the node; a link refuses the chmod)."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.chmod(f"/proc/self/fd/{fd}", mode)
    finally:
        os.close(fd)


def is_dir(path: str) -> bool:
    """A directory itself (not a symbolic link to one)."""
    st = lstat_or_none(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def lstat_or_none(path: str) -> os.stat_result | None:
    """``lstat`` of *path*, ``None`` when it cannot be had."""
    try:
        return os.lstat(path)
    except OSError:
        return None


def check_writable(target: str, dry_run: bool) -> None:
    """:class:`RestoreError` unless files can be made in *target* (not asked under ``-N``)."""
    if dry_run:
        return
    if not os.path.isdir(target):
        raise RestoreError(f"target directory {target} does not exist or is not a directory")
    try:
        for n in itertools.count():
            probe = os.path.join(target, f".pyrestore-probe{os.getpid()}.{n}")
            try:
                os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                break
            except FileExistsError:
                continue
        os.unlink(probe)
    except OSError as exc:
        raise RestoreError(f"cannot write in target directory {target}: {exc.strerror}") from None

