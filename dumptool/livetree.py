"""The live directory tree as a dump reads it (the default :class:`~dumptool.trees.Tree`).

* Pass I's walk (:func:`walk_tree`): ``os.scandir``/``lstat``, every inode
  numbered through the chain's map (a snapfs file by its stable number);
* a regular file opened by name in its directory's descriptor (held open
  while the files of one directory follow), read with ``SEEK_DATA``/
  ``SEEK_HOLE`` so holes stay holes, a small file in one read;
* xattrs in every namespace (``listxattr``/``getxattr``), inode flags
  (``FS_IOC_GETFLAGS``, as ``lsattr`` shows them);
* for a snapfs snapshot view (``X/.snapshot/NAME/sub``), the live path the
  dump is recorded under and when the snapshot froze.
"""

from __future__ import annotations

import errno
import fcntl
import operator
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator

from snapdump.snapfs_names import INO_XATTR, SNAPDIR_NAME, SNAPSHOT_CREATED_XATTR, SNAPSHOT_XATTR, TRUSTED_INO_XATTR

from .errors import DumpError
from .format import TP_BSIZE, Dirent, Slice, data_slice, dtype_from_mode
from .traverse import FS_NODUMP_FL, Node, Numbering, Stat, dirent_maker
from .trees import Warn, has_zero_block

#: ``FS_IOC_GETFLAGS``: the inode flags restore -C compares (``lsattr``).
FS_IOC_GETFLAGS = 0x80086601
#: Read size for file data (a multiple of TP_BSIZE).
READ_CHUNK = 64 * TP_BSIZE

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
_NOATIME = getattr(os, "O_NOATIME", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_PATH", 0)
_new = object.__new__


class LiveTree:
    """The directory tree at ``source`` (which must be a directory), read
    through the kernel.  ``warn`` receives what could not be read."""

    def __init__(self, source: str | os.PathLike[str], warn: Warn | None = None) -> None:
        self.root = os.path.abspath(source)
        self.warn: Warn = warn or (lambda line: None)
        if not os.path.isdir(self.root):
            what = "no such directory" if not os.path.exists(self.root) else "not a directory"
            raise DumpError(f"cannot dump {self.root}: {what}")
        self._folder: bytes | None = None   # the directory _folder_fd holds open
        self._folder_fd: int | None = None

    def walk(self, numbering: Numbering, *, exclude: Iterable[int] = (), nodump: bool = False) -> dict[int, Node]:
        return walk_tree(self.root, numbering, exclude=exclude, warn=self.warn, nodump=nodump)

    def block_size(self) -> int:
        try:
            return os.statvfs(self.root).f_bsize or 4096
        except OSError:
            return 4096

    def open(self, node: Node) -> "LiveFile":
        """The file opened by name in its directory (whose descriptor stays
        open while the files of one directory follow)."""
        folder, name = node.location
        if name is None:
            fd = _open_for_reading(node.path)
        else:
            if folder is not self._folder:
                self._set_folder(folder)
            if self._folder_fd is None:
                fd = _open_for_reading(node.path)
            else:
                try:
                    fd = os.open(name, _READ_FLAGS | _NOATIME, dir_fd=self._folder_fd)
                except PermissionError:
                    fd = os.open(name, _READ_FLAGS, dir_fd=self._folder_fd)
        return LiveFile(fd, node.path, self.warn)

    def flags(self, node: Node) -> int:
        return inode_flags(node.path, node)

    def xattrs(self, node: Node) -> dict[str, bytes]:
        path = node.path
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError as exc:
            _xattr_list_failed(path, exc, self.warn)
            return {}
        return _xattr_values(path, names, path, self.warn) if names else {}

    def readlink(self, node: Node) -> bytes:
        return os.readlink(node.path)

    def close(self) -> None:
        self._set_folder(None)

    def _set_folder(self, folder: bytes | None) -> None:
        if self._folder_fd is not None:
            os.close(self._folder_fd)
            self._folder_fd = None
        self._folder = folder
        if folder is not None:
            try:
                self._folder_fd = os.open(folder, _DIR_FLAGS)
            except OSError:
                pass  # the files get opened by their whole path


class LiveFile:
    """A regular file of a :class:`LiveTree`, open for reading."""

    __slots__ = ("fd", "path", "warn", "flags")

    def __init__(self, fd: int, path: bytes, warn: Warn) -> None:
        self.fd = fd
        self.path = path
        self.warn = warn
        # The flags come from the descriptor the data is read with.
        self.flags = fd_inode_flags(fd)

    def read(self, offset: int, size: int) -> bytes:
        data = os.pread(self.fd, size, offset)
        return data if len(data) == size else data.ljust(size, b"\0")  # the file shrank since the walk

    def slices(self, size: int, *, seek_holes: bool = True) -> Iterator[Slice]:
        if not seek_holes and size <= READ_CHUNK:
            return iter(_small_file_slices(self.fd, size))
        return _data_slices(self.fd, size, seek_holes=seek_holes)

    def xattrs(self) -> dict[str, bytes]:
        fd = self.fd
        try:
            names = os.listxattr(fd)
        except OSError as exc:
            _xattr_list_failed(self.path, exc, self.warn)
            return {}
        return _xattr_values(fd, names, self.path, self.warn) if names else {}

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> "LiveFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _xattr_list_failed(path: bytes, exc: OSError, warn: Warn) -> None:
    if exc.errno not in (errno.ENOTSUP, errno.ENOENT):
        warn(f"cannot list extended attributes of {os.fsdecode(path)}: {exc.strerror}")


def _xattr_values(target: bytes | int, names: list[str], path: bytes, warn: Warn) -> dict[str, bytes]:
    """The values of xattrs ``names`` of ``target`` (a path, not followed, or a descriptor)."""
    values = {}
    by_path = not isinstance(target, int)
    for name in names:
        try:
            values[name] = os.getxattr(target, name, follow_symlinks=False) if by_path else os.getxattr(target, name)
        except OSError as exc:
            warn(f"cannot read extended attribute {name} of {os.fsdecode(path)}: {exc.strerror}")
    return values


def _open_for_reading(path: bytes) -> int:
    try:
        return os.open(path, _READ_FLAGS | _NOATIME)
    except PermissionError:
        return os.open(path, _READ_FLAGS)


def _small_file_slices(fd: int, size: int) -> list[Slice]:
    """What ``_data_slices(fd, size, seek_holes=False)`` yields for a file of
    at most one read chunk, read at once (most files are small)."""
    want = -(-size // TP_BSIZE) * TP_BSIZE
    if not want:
        return []
    chunk = os.pread(fd, want, 0)
    if len(chunk) < want:
        chunk = chunk.ljust(want, b"\0")  # the file shrank since the walk
    if has_zero_block(chunk):
        return [data_slice(chunk[i:i + TP_BSIZE]) for i in range(0, want, TP_BSIZE)]
    return [chunk]


def _data_slices(fd: int, size: int, *, seek_holes: bool = True) -> Iterator[Slice]:
    """The slices of an open file of ``size`` bytes, holes found with
    SEEK_DATA/SEEK_HOLE left unread (None).  Data with no all-zero block
    comes as runs of whole slices (a chunk read at once).  ``seek_holes``
    False reads everything (a file with as many blocks as bytes has no
    hole to skip); all-zero blocks become holes either way."""
    pos = 0
    while pos < size:
        if not seek_holes:
            data = pos
        else:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    data = size  # a hole to the end
                else:
                    data = pos   # no hole support: read everything
        hole_end = min(data, size) // TP_BSIZE * TP_BSIZE
        while pos < hole_end:
            yield None
            pos += TP_BSIZE
        if pos >= size:
            return
        try:
            end = os.lseek(fd, max(data, pos), os.SEEK_HOLE) if seek_holes else size
        except OSError:
            end = size
        end = min(-(-end // TP_BSIZE) * TP_BSIZE, -(-size // TP_BSIZE) * TP_BSIZE)
        if end <= pos:
            end = pos + TP_BSIZE
        while pos < end:
            want = min(READ_CHUNK, end - pos)
            chunk = os.pread(fd, want, pos)
            if len(chunk) < want:
                chunk = chunk.ljust(want, b"\0")  # the file shrank while we read it
            if has_zero_block(chunk):  # data_slice makes that block a hole
                for i in range(0, want, TP_BSIZE):
                    yield data_slice(chunk[i:i + TP_BSIZE])
            else:
                yield chunk  # want is whole slices: end and pos are
            pos += want


def inode_flags(path: bytes, st: os.stat_result | Node) -> int:
    """The ``FS_IOC_GETFLAGS`` value of a regular file or directory, else 0
    (restore -C compares it; the ioctl fails on devices and sockets)."""
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        return fd_inode_flags(fd)
    finally:
        os.close(fd)


def fd_inode_flags(fd: int) -> int:
    """The ``FS_IOC_GETFLAGS`` value of an open regular file or directory, 0
    where the file system has none."""
    try:
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, _FLAGS, True)
    except OSError:
        return 0
    return int.from_bytes(_FLAGS[:4], sys.byteorder)  # the kernel writes an int


_FLAGS = bytearray(8)  # FS_IOC_GETFLAGS's argument (a long by its number)
#: Where a file system tells a file's stable inode number (decimal): snapfs,
#: whose ``.snapshot/NAME/`` trees show other st_ino values than the live tree.
#: ``trusted.`` answers root for every file type; ``user.`` anyone, for files
#: and directories.
STABLE_INO_XATTRS = (TRUSTED_INO_XATTR, INO_XATTR)
SNAPSHOT_DIR = os.fsdecode(SNAPDIR_NAME)


class _StableInodes:
    """A file's identity for the inode map: the stable number where the file
    system exposes one (so every image of a chain dumped from snapshots keeps
    one number per file), else ``st_ino``.  Probed once per device: elsewhere
    it costs no system call."""

    def __init__(self) -> None:
        self._has: dict[int, bool] = {}
        #: The devices known to have no stable numbers: st_ino is the identity.
        self.plain_devices: set[int] = set()

    def ino(self, path: bytes | str, st: os.stat_result | Stat) -> int:
        has = self._has.get(st.st_dev)
        if has is False:
            return st.st_ino
        for name in STABLE_INO_XATTRS:
            try:
                value = int(os.getxattr(path, name, follow_symlinks=False))
            except (OSError, ValueError):
                continue
            self._has[st.st_dev] = True
            return value
        if has is None:
            self._has[st.st_dev] = False
            self.plain_devices.add(st.st_dev)
        return st.st_ino


def live_path(source: str) -> str:
    """The path a dump of ``source`` is recorded under: for a snapfs snapshot
    view ``X/.snapshot/NAME/sub``, the live ``X/sub`` (dumpdates, the inode
    map and the image's file system name are the live tree's), else ``source``."""
    parts = source.split(os.sep)
    if SNAPSHOT_DIR not in parts[:-1]:
        return source
    try:
        if not os.getxattr(source, SNAPSHOT_XATTR):
            return source
    except OSError:
        return source
    i = len(parts) - 1 - parts[::-1].index(SNAPSHOT_DIR)
    if i + 1 >= len(parts):
        return source
    return os.sep.join(parts[:i] + parts[i + 2:]) or os.sep


def snapshot_time(source: str) -> int | None:
    """When the snapfs snapshot ``source`` lies in (``X/.snapshot/NAME/...``)
    was taken, in whole seconds since the epoch (rounded down: an incremental
    based on it takes again what changed in that second); None for any other
    tree."""
    if SNAPSHOT_DIR not in source.split(os.sep)[:-1]:
        return None
    try:
        if not os.getxattr(source, SNAPSHOT_XATTR):
            return None
        return int(os.getxattr(source, SNAPSHOT_CREATED_XATTR)) // 1_000_000_000
    except (OSError, ValueError):
        return None


def walk_tree(
    source: str | os.PathLike[str],
    numbering: Numbering,
    *,
    exclude: Iterable[int] = (),
    warn: Callable[[str], None] | None = None,
    nodump: bool = False,
) -> dict[int, Node]:
    """Pass I's walk: every inode under ``source`` (which must be a directory),
    numbered.  Inodes in ``exclude`` (dump numbers) are left out with their
    subtrees, and their names with them; so are directories with the nodump
    flag when ``nodump`` (dump honours it at this level: its ``-h``; files
    with the flag are left out by :func:`plan_dump`).  Files that vanish
    while the walk runs are skipped."""
    root = os.fsencode(os.path.abspath(source))
    try:
        st = os.lstat(root)
    except OSError as exc:
        raise DumpError(f"cannot dump {os.fsdecode(root)}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DumpError(f"cannot dump {os.fsdecode(root)}: not a directory")
    excluded = set(exclude)
    nodes: dict[int, Node] = {}
    stable = _StableInodes()
    ino = stable.ino(root, st)
    root_ino = numbering.number(st.st_dev, ino, root=True)
    nodes[root_ino] = Node(root_ino, root, st)
    nodes[root_ino].st.st_ino = ino
    stack = [root_ino]
    number = numbering.number
    plain = stable.plain_devices
    new_dirent = dirent_maker()
    child = Node.child
    by_name = operator.attrgetter("name")
    while stack:
        dino = stack.pop()
        dnode = nodes[dino]
        entries: list[Dirent] = []
        dpath = dnode.path
        try:
            with os.scandir(dpath) as it:
                listing = sorted(it, key=by_name)
        except OSError as exc:
            if dino == root_ino or exc.errno == errno.ENOTCONN:
                # the tree itself, or its file system gone (a FUSE daemon that died): an image
                # of nothing, dated as if it held the tree, would hide every file from the chain
                raise DumpError(f"cannot dump {os.fsdecode(root)}: cannot read directory "
                                f"{os.fsdecode(dnode.path)}: {exc.strerror}") from None
            if warn:
                warn(f"cannot read directory {os.fsdecode(dnode.path)}: {exc.strerror}; dumped empty")
            listing = []
        for entry in listing:
            try:
                cst = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone since the listing
            except OSError as exc:  # ENAMETOOLONG (a path past PATH_MAX), ENOTCONN, EIO: said, not hidden
                if exc.errno == errno.ENOTCONN:
                    raise DumpError(f"cannot dump {os.fsdecode(root)}: cannot read "
                                    f"{os.fsdecode(entry.path)}: {exc.strerror}") from None
                if warn:
                    warn(f"cannot dump {os.fsdecode(entry.path)}: {exc.strerror}; left out")
                continue
            if nodump and cst.st_mode & 0o170000 == stat.S_IFDIR and \
                    inode_flags(entry.path, cst) & FS_NODUMP_FL:
                continue  # dump's nodump directory: it and its subtree stay out
            dev = cst.st_dev
            ino = cst.st_ino if dev in plain else stable.ino(entry.path, cst)
            cino = number(dev, ino)
            if cino in excluded:
                continue
            name = entry.name
            if len(name) > 255:
                if warn:
                    warn(f"name too long for a dump image, skipped: {os.fsdecode(entry.path)[:80]}...")
                continue
            mode = cst.st_mode
            node = nodes.get(cino)
            if node is None:
                node = nodes[cino] = child(cino, dpath, name, cst, dino)
                node.st_ino = ino  # the inode map's key (see _StableInodes)
                if mode & 0o170000 == stat.S_IFDIR:
                    stack.append(cino)
            else:
                node.parents += (dino,)
            entries.append(new_dirent(cino, name, _DTYPES.get(mode & 0o170000) or _dtype(mode)))
        dnode.entries = entries
    return nodes


_DTYPES: dict[int, int] = {}


def _dtype(mode: int) -> int:
    fmt = stat.S_IFMT(mode)
    found = _DTYPES.get(fmt)
    if found is None:
        found = _DTYPES[fmt] = dtype_from_mode(mode)
    return found
