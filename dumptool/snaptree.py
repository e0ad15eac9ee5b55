"""A held snapfs snapshot as a dump's :class:`~dumptool.trees.Tree`, read straight from the store.

Linux dump reads ext2 through libext2fs and ONTAP's dump reads WAFL's inodes,
not through the VFS; :class:`SnapshotTree` does the same for a snapfs volume:
it reads one held snapshot with :func:`snapfs.reader.open_snapshot` (inodes
in inode order with their xattrs, directory entries, block maps and data),
never through the FUSE mount, which was measured many times slower.

The scope is the whole volume, a qtree, or any directory under the mount:
the walk takes only that subtree, and its directory is the dump's root inode.
:attr:`Node.path` is the path the file had under the mount (for messages),
the stat fields are the snapshot's, ``st_ino`` the snapfs inode number (the
same in every snapshot and the live tree, so an increment chain keeps one
dump number per file) and ``st_dev`` a constant of the volume (from its uuid,
so it survives remounts).

Dump numbers are given in snapfs inode order (the root first), so the files
are read in the order the store keeps them, and their block maps are fetched
for many inodes in one query (:data:`_MAP_WINDOW`).

snapfs is imported here only: a dump of an ordinary directory never loads it.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import os
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator

from .errors import DumpError
from .format import TP_BSIZE, Slice, dtype_from_mode
from .traverse import Node, Numbering, dirent_maker
from .trees import Warn, chunk_slices

#: Inode numbers whose data runs one query fetches (see :meth:`SnapshotTree._runs_of`).
_MAP_WINDOW = 1024
#: Inodes (rows, with their xattrs) the walk reads per query: it keeps them all anyway, and each
#: query costs (its statement, its read transaction) whatever its length.
_WALK_CHUNK = 8192
#: Bytes read at once for a file's slices (as dump.py's read chunk).
_READ_CHUNK = 64 * TP_BSIZE
_NO_RUNS: list[tuple[int, int, int]] = []
_NO_ROWS: list[tuple[int, bytes, int]] = []
_PARENT = _INO = operator.itemgetter(0)  # of an entry row (parent, name, ino); of an inode row
_NAME = operator.itemgetter(1)
_INO_OF_ENTRY = operator.itemgetter(2)


class _Stat:
    """The stat fields :class:`Node` copies, from a snapshot inode's row
    (:meth:`snapfs.reader.SnapshotReader.inode_rows`: ``nblocks`` in volume blocks,
    ``per_block`` 512-byte units each)."""

    __slots__ = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime_ns", "st_mtime_ns",
                 "st_ctime_ns", "st_rdev", "st_blocks", "st_dev", "st_ino")

    def __init__(self, row: tuple, dev: int, per_block: int) -> None:
        (self.st_ino, self.st_mode, self.st_nlink, self.st_uid, self.st_gid, self.st_rdev, self.st_size, nblocks,
         self.st_atime_ns, self.st_mtime_ns, self.st_ctime_ns, _target) = row
        self.st_blocks = nblocks * per_block
        self.st_dev = dev


class SnapshotFile:
    """One regular file of the snapshot, open for reading (a :class:`~dumptool.trees.TreeFile`)."""

    __slots__ = ("_size", "_bs", "_read_blocks", "_tree", "_node", "_runs", "_starts")
    flags = 0  # snapfs keeps no ext2 inode flags

    def __init__(self, tree: "SnapshotTree", node: Node, size: int, runs: list[tuple[int, int, int]],
                 block_size: int, read_blocks: Callable[[int, int], bytes]) -> None:
        self._tree = tree
        self._node = node
        self._size = size
        self._bs = block_size
        self._read_blocks = read_blocks
        self._runs = runs  # (index, block, count): blocks stored one after the other, by index
        self._starts: list[int] | None = None  # the runs' first indexes, when _pieces needs them

    def __enter__(self) -> "SnapshotFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    def xattrs(self) -> dict[str, bytes]:
        return self._tree.xattrs(self._node)

    def _pieces(self, first: int, last: int) -> Iterator[tuple[int, int, int]]:
        """(index, block, count): the stored stretches of blocks ``first``..``last``."""
        runs = self._runs
        i = 0
        if len(runs) > 1:
            if self._starts is None:
                self._starts = [r[0] for r in runs]
            i = max(bisect.bisect_right(self._starts, first) - 1, 0)
        while i < len(runs):
            idx, block, count = runs[i]
            if idx > last:
                return
            lo, hi = max(idx, first), min(idx + count - 1, last)
            if lo <= hi:
                yield lo, block + lo - idx, hi - lo + 1
            i += 1

    def read(self, offset: int, size: int) -> bytes:
        """Exactly ``size`` bytes from ``offset``: holes and what lies past the end read as zeros."""
        end = offset + size
        if end > self._size:
            end = self._size
        if end <= offset:
            return bytes(size)
        bs = self._bs
        runs = self._runs
        if len(runs) == 1:  # one stretch of stored blocks (most files): read it without _pieces
            idx, block, count = runs[0]
            first, last = offset // bs, (end - 1) // bs
            if idx <= first and last < idx + count:
                data = self._read_blocks(block + first - idx, last - first + 1)
                lo = offset - first * bs
                if lo or len(data) != end - offset:
                    data = data[lo:lo + end - offset]
                return data if len(data) == size else data + bytes(size - len(data))
        pieces = list(self._pieces(offset // bs, (end - 1) // bs))
        if len(pieces) == 1 and pieces[0][0] * bs <= offset and (pieces[0][0] + pieces[0][2]) * bs >= end:
            idx, block, count = pieces[0]  # one stretch of blocks holds it all (most reads)
            data = self._read_blocks(block, count)
            lo = offset - idx * bs
            if lo or len(data) != end - offset:
                data = data[lo:lo + end - offset]
            return data if len(data) == size else data + bytes(size - len(data))
        out = bytearray(size)
        for idx, block, count in pieces:
            lo, hi = max(offset, idx * bs), min(end, (idx + count) * bs)
            data = self._read_blocks(block, count)
            out[lo - offset:hi - offset] = data[lo - idx * bs:hi - idx * bs]
        return bytes(out)

    def slices(self, size: int, *, seek_holes: bool = True) -> Iterator[Slice]:
        """The file's slices as a dump writes them: None for each 1 KiB of a hole (an
        unmapped block, or an all-zero 1 KiB of data), else runs of whole slices.  The
        block map tells the holes, so ``seek_holes`` changes nothing."""
        bs = self._bs
        total = -(-size // TP_BSIZE) * TP_BSIZE  # whole slices
        pos = 0
        for idx, _block, count in (self._pieces(0, (total - 1) // bs) if total else ()):
            start, end = min(idx * bs, total), min((idx + count) * bs, total)
            while pos < start:
                yield None
                pos += TP_BSIZE
            while pos < end:
                want = min(_READ_CHUNK, end - pos)
                yield from chunk_slices(self.read(pos, want))
                pos += want
        while pos < total:
            yield None
            pos += TP_BSIZE


class SnapshotTree:
    """What a dump reads from snapshot ``snapshot`` of the snapfs volume at ``volume`` (its
    mount point or folder), under ``scope`` (a path under the mount, or relative to the
    volume's root; the whole volume by default).  The snapshot must be held (by
    ``holder``, when given) for as long as the tree is open."""

    def __init__(self, volume: str | os.PathLike, snapshot: str, scope: str | os.PathLike | None = None,
                 warn: Warn | None = None, *, holder: str | None = None) -> None:
        #: snapfs inodes under client I/O restriction (ino -> owner): regular files and LUNs among
        #: them are not dumped (see :meth:`walk`); set before the walk
        self.restricted: dict[int, str] = {}
        #: snapfs inodes the base dump skipped under restriction: taken now, changed or not
        self.carried: dict[int, str] = {}
        #: whether the dump is an incremental of a chain (a restricted file it dumped before keeps its name)
        self.keep_names = False
        #: after the walk: what was skipped under restriction (snapfs ino -> path under the mount)
        self.skipped: dict[int, str] = {}
        #: after the walk: dump numbers kept by name but not dumped (an incremental keeps the
        #: earlier copy), and dump numbers taken whether they changed or not (see plan_dump)
        self.unchanged: set[int] = set()
        self.forced: set[int] = set()
        from snapfs.errors import SnapfsError  # here: dumptool works without snapfs
        from snapfs.reader import open_snapshot

        self._warn = warn or (lambda line: None)
        self.volume = os.path.abspath(volume)
        try:
            self._reader = open_snapshot(self.volume, snapshot, holder)
        except SnapfsError as exc:
            raise DumpError(f"cannot read snapshot {snapshot} of {self.volume}: {exc}") from None
        try:
            self.snapshot = snapshot
            self.created_ns: int = self._reader.created_ns
            self._dev = zlib.crc32(self._reader.volume_identity.uuid.encode()) | 0x1_0000_0000
            #: the volume's identity as the snapshot was taken (uuid, generation, type, aggregate)
            self.identity = self._reader.identity
            rel = self._relative(scope)
            #: the path named in "Dumping ROOT" and the image's file system name
            self.root: str = os.path.join(self.volume, rel) if rel else self.volume
            self._scope_ino = self._lookup(rel)
            qtree = next((q for q in self._reader.qtrees() if q.ino == self._scope_ino), None)
            #: what the scope is: ``volume``, ``qtree`` or ``directory`` (ONTAP folds its stage I
            #: into stage II for a whole volume or qtree: nothing to leave out but excluded files)
            self.scope: str = "volume" if not rel else "qtree" if qtree is not None else "directory"
        except BaseException:
            self._reader.close()
            raise
        self._attrs: dict = {}
        self._xattrs: dict[int, dict[bytes, bytes]] = {}
        self._targets: dict[int, bytes] = {}
        self._window: tuple[int, int] = (1, 0)
        self._maps: dict[int, list[tuple[int, int, int]]] = {}
        self._bs = self._reader.block_size
        self._read_blocks = self._reader.read_blocks
        self._stream_inos: set[int] = set()
        self._dosnames: dict[int, dict[bytes, bytes]] = {}

    # -- the scope ----------------------------------------------------------------------
    def _relative(self, scope: str | os.PathLike | None) -> str:
        if scope is None:
            return ""
        scope = os.fspath(scope)
        if os.path.isabs(scope):
            rel = os.path.relpath(os.path.abspath(scope), self.volume)
            if rel == os.pardir or rel.startswith(os.pardir + os.sep):
                raise DumpError(f"cannot dump {scope}: it is not under the volume {self.volume}")
        else:
            rel = os.path.normpath(scope)
        return "" if rel == os.curdir else rel

    def _lookup(self, rel: str) -> int:
        """The snapfs inode of directory ``rel`` in the snapshot."""
        ino = self._reader.root
        for part in (p for p in rel.split(os.sep) if p):
            name = os.fsencode(part)
            found = next((e.ino for e in self._reader.entries(ino) if e.name == name), None)
            if found is None:
                raise DumpError(f"cannot dump {os.path.join(self.volume, rel)}: not in snapshot {self.snapshot}")
            ino = found
        if not stat.S_ISDIR(self._reader.inode(ino).mode):
            raise DumpError(f"cannot dump {os.path.join(self.volume, rel)}: not a directory")
        return ino

    # -- the Tree protocol ----------------------------------------------------------------
    def walk(self, numbering: Numbering, *, exclude: Iterable[int] = (), nodump: bool = False) -> dict[int, Node]:
        """Pass I's walk of the scope, as :func:`dumptool.traverse.walk_tree` gives it (snapfs
        keeps no nodump flag: ``nodump`` changes nothing)."""
        from snapfs import luns

        reader = self._reader
        attrs: dict[int, tuple] = {}  # ino -> its row (see _Stat): mode at [1], size at [6]
        xattrs = self._xattrs
        targets = self._targets
        for rows, chunk_xattrs in reader.inode_rows(chunk=_WALK_CHUNK):
            xattrs.update(chunk_xattrs)
            attrs.update(zip(map(_INO, rows), rows))
            targets.update([(r[0], r[11]) for r in rows if r[11] is not None])
        # An inconsistent LUN is not backed up (ONTAP's rule): left out with its names, said once.
        inconsistent = set()
        lun = luns.LUN_XATTR
        for ino, record in [(ino, x[lun]) for ino, x in xattrs.items() if lun in x]:
            try:
                if luns.decode(record).state == "inconsistent":
                    inconsistent.add(ino)
            except (ValueError, KeyError, IndexError, UnicodeDecodeError):
                pass  # an unreadable record (fsck reports it): dumped as the file it is
        top = self._scope_ino
        listing, seen = self._listing(top, attrs)
        # Dump numbers in snapfs inode order, the root first.
        dev = self._dev
        known = getattr(numbering, "get", None)  # an InodeMap: what earlier dumps of the chain numbered
        restricted = {ino for ino in self.restricted if ino in seen and ino != top and stat.S_ISREG(attrs[ino][1])}
        # A restricted file the chain dumped before keeps its name in an incremental (restore keeps the
        # earlier copy); one never dumped (new, or skipped by the base too) is left out with its names.
        kept = {ino for ino in restricted if self.keep_names and known is not None
                and known(dev, ino) is not None and ino not in self.carried}
        order = list(attrs) if len(seen) == len(attrs) else sorted(seen)  # (attrs: in inode order)
        order.remove(top)
        numbers = numbering.number_all(dev, top, order)
        nodes = self._nodes(top, listing, attrs, numbers, set(exclude), inconsistent, restricted, kept)
        self.unchanged = {numbers[ino] for ino in kept}
        self.forced = {numbers[ino] for ino in self.carried if ino in seen and ino not in restricted}
        if len(seen) < len(attrs):  # (seen holds only inodes of attrs)
            for table in (xattrs, targets):
                for ino in [i for i in table if i not in seen]:
                    del table[ino]
            attrs = {ino: attrs[ino] for ino in seen}
        self._attrs = attrs
        # Pass V's objects beyond xattrs: which inodes have streams kept as data, stored 8.3 names
        self._stream_inos = reader.stream_inodes() & seen
        self._dosnames = {}
        for (parent, name), dos in reader.stored_dosnames().items():
            if parent in seen:
                self._dosnames.setdefault(parent, {})[name] = dos
        return nodes

    def _listing(self, top: int, attrs: dict[int, tuple]) -> tuple[dict[int, list[tuple[int, bytes, int]]], set[int]]:
        """The scope's directories and their entries, and the inodes they name (with ``top``):
        directory -> its ``(parent, name, ino)`` rows, by name (as walk_tree sorts them), without
        names too long for an image (said once) or naming no inode of the snapshot.  A
        directory without entries may have no list."""
        reader, warn = self._reader, self._warn
        if top == reader.root:  # the whole volume: every entry in one query, (parent, name, ino) by parent, name
            grouped = {parent: list(rows) for parent, rows in itertools.groupby(reader.all_entry_rows(), _PARENT)}
            listed = grouped.keys()  # the only directories that have entries

            def rows_of(d: int) -> list[tuple[int, bytes, int]]:
                return grouped.get(d, _NO_ROWS)
        else:  # a qtree or a directory: its directories' entries, one query each
            listed = None

            def rows_of(d: int) -> list[tuple[int, bytes, int]]:
                return sorted([(d, name, ino) for name, ino in reader.entry_rows(d)])
        listing: dict[int, list[tuple[int, bytes, int]]] = {}
        todo = [top]
        seen = {top}
        while todo:
            d = todo.pop()
            rows = rows_of(d)
            new = set(map(_INO_OF_ENTRY, rows))
            if rows and (max(map(len, map(_NAME, rows))) > 255 or not attrs.keys() >= new):
                kept = []
                for row in rows:
                    if row[2] not in attrs:
                        continue
                    if len(row[1]) > 255:
                        warn(f"name too long for a dump image, skipped: {os.fsdecode(row[1])[:80]}...")
                        continue
                    kept.append(row)
                rows = kept
                new = set(map(_INO_OF_ENTRY, rows))
            listing[d] = rows
            new -= seen
            if not new:
                continue
            seen |= new
            # the new directories, to list next, in name order (as walk_tree: the warnings' order)
            subdirs = {ino for ino in (new if listed is None else new & listed)
                       if attrs[ino][1] & 0o170000 == stat.S_IFDIR}
            for row in rows if subdirs else ():
                if row[2] in subdirs:
                    subdirs.discard(row[2])
                    todo.append(row[2])
        return listing, seen

    def _nodes(self, top: int, listing: dict[int, list[tuple[int, bytes, int]]], attrs: dict[int, tuple],
               numbers: dict[int, int], excluded: set[int], inconsistent: set[int], restricted: set[int],
               kept: set[int]) -> dict[int, Node]:
        """The nodes, walked as walk_tree walks (a stack; a hard link's first name found is its path)."""
        warn = self._warn
        dev = self._dev
        root_path = os.fsencode(self.root)
        rnum = numbers[top]
        per_block = self._bs // 512
        nodes: dict[int, Node] = {rnum: Node(rnum, root_path, _Stat(attrs[top], dev, per_block))}
        child = Node.child_of_row
        dirent = _new_dirent
        dtypes = _DTYPES
        stack = [top]
        while stack:
            d = stack.pop()
            dnode = nodes[numbers[d]]
            dpath = dnode.path
            dnum = dnode.ino
            out = []
            if not (excluded or inconsistent or restricted):  # nothing left out (most dumps): fewer questions
                for _parent, name, ino in listing.get(d, _NO_ROWS):
                    cnum = numbers[ino]
                    row = attrs[ino]
                    fmt = row[1] & 0o170000
                    node = nodes.get(cnum)
                    if node is None:  # (the row: ino, mode, nlink, uid, gid, rdev, size, nblocks, times; see _Stat)
                        nodes[cnum] = child(cnum, dpath, name, dnum, row, dev, per_block)
                        if fmt == 0o040000:
                            stack.append(ino)
                    else:
                        node.parents += (dnum,)
                    out.append(dirent(cnum, name, dtypes[fmt]))
                dnode.entries = out
                continue
            for _parent, name, ino in listing.get(d, _NO_ROWS):
                cnum = numbers[ino]
                if cnum in excluded:
                    continue
                if ino in inconsistent:
                    warn(f"LUN {os.fsdecode(os.path.join(dpath, name))} is inconsistent: not dumped")
                    continue
                if ino in restricted and ino not in self.skipped:
                    where = os.fsdecode(os.path.join(dpath, name))
                    self.skipped[ino] = where
                    warn(f"{where}: under client I/O restriction (owner {self.restricted[ino]}): not dumped; "
                         "the next dump of this path takes it")
                if ino in restricted and ino not in kept:
                    continue
                row = attrs[ino]
                node = nodes.get(cnum)
                if node is None:
                    node = nodes[cnum] = child(cnum, dpath, name, dnum, row, dev, per_block)
                    if row[1] & 0o170000 == stat.S_IFDIR:
                        stack.append(ino)
                else:
                    node.parents += (dnum,)
                out.append(dirent(cnum, name, dtypes[row[1] & 0o170000]))
            dnode.entries = out
        return nodes

    def block_size(self) -> int:
        return self._reader.block_size

    def open(self, node: Node) -> SnapshotFile:
        ino = node.st_ino
        a = self._attrs.get(ino)
        if a is None or a[1] & 0o170000 != stat.S_IFREG:
            raise OSError(22, "not a regular file of the snapshot", os.fsdecode(node.path))
        return SnapshotFile(self, node, a[6], self._runs_of(ino), self._bs, self._read_blocks)

    def flags(self, node: Node) -> int:
        return 0

    def xattrs(self, node: Node) -> dict[str, bytes]:
        x = self._xattrs.get(node.st_ino)
        return {os.fsdecode(k): v for k, v in x.items()} if x else {}

    def readlink(self, node: Node) -> bytes:
        target = self._targets.get(node.st_ino)
        if target is None:
            raise OSError(22, "not a symbolic link of the snapshot", os.fsdecode(node.path))
        return target

    def stream_sizes(self, node: Node) -> dict[bytes, int]:
        """The named streams of ``node`` kept as data (too large for an xattr): name -> size
        (for Pass V, :mod:`dumptool.pass5`; their bytes: :meth:`stream_chunks`)."""
        return self._reader.stream_sizes(node.st_ino) if node.st_ino in self._stream_inos else {}

    def stream_chunks(self, node: Node, name: bytes) -> Iterator[bytes]:
        """The bytes of ``node``'s stream ``name`` kept as data, a chunk at a time."""
        return self._reader.stream_chunks(node.st_ino, name)

    def dosnames(self, node: Node) -> dict[bytes, bytes]:
        """The stored DOS 8.3 names of directory ``node``'s entries: name -> short name."""
        return self._dosnames.get(node.st_ino, {})

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "SnapshotTree":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- inside ------------------------------------------------------------------------
    def _runs_of(self, ino: int) -> list[tuple[int, int, int]]:
        """The data runs of ``ino``, from a window of inodes fetched in one query."""
        lo, hi = self._window
        if not lo <= ino <= hi:
            lo, hi = ino, ino + _MAP_WINDOW - 1
            self._maps = self._reader.block_runs(lo, hi)
            self._window = (lo, hi)
        return self._maps.get(ino, _NO_RUNS)


_new_dirent = dirent_maker()
#: The d_type of each file format (``mode & S_IFMT``: the 16 there are).
_DTYPES: dict[int, int] = {fmt << 12: dtype_from_mode(fmt << 12) for fmt in range(16)}
