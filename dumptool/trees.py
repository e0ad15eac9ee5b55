"""What a dump reads, apart from how it writes: the Tree protocol.

:class:`~dumptool.dump.Dump` reads its source only through a :class:`Tree`:
the live directory tree (:class:`~dumptool.livetree.LiveTree`, the default)
or a held snapfs snapshot read straight from the volume's store.  A tree
walks itself into :class:`~dumptool.traverse.Node` objects (Pass I), opens a
regular file as a :class:`TreeFile` (its data as slices, its flags and
xattrs), and tells the flags, xattrs and link target of any other inode.

Trees are built with a ``warn`` callback (dump's warning line): what a tree
cannot read but a dump can go on without (an xattr, a directory listing) is
reported there, never raised.

The shared spec (names and signatures) is ``tree-protocol.md``; the helpers
below are for implementations: a slice of all zeros is a hole on the image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from .format import TP_BSIZE, Slice, data_slice
from .traverse import Node, Numbering

#: How a tree reports what it could not read (dump's warning line).
Warn = Callable[[str], None]

_ZERO_BLOCK = bytes(TP_BSIZE)


class TreeFile(Protocol):
    """One regular file of a tree, open for reading (a context manager)."""

    #: ext2 inode flags (``FS_*_FL``) for ``di_flags``, as read from this open file.
    flags: int

    def read(self, offset: int, size: int) -> bytes:
        """Exactly ``size`` bytes from ``offset``, zero-filled past the end (the file shrank)."""
        ...

    def slices(self, size: int, *, seek_holes: bool = True) -> Iterator[Slice]:
        """The file's 1 KiB slices for ``size`` bytes: None for a hole, bytes
        runs of whole slices for data (an all-zero slice is a hole too);
        ``seek_holes`` False reads everything."""
        ...

    def xattrs(self) -> dict[str, bytes]:
        """Every extended attribute by its full name (``user.x``,
        ``system.posix_acl_access``...); problems go to the tree's warn callback."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> "TreeFile": ...

    def __exit__(self, *exc: object) -> None: ...


class Tree(Protocol):
    """What a dump reads: the live directory tree or a held snapfs snapshot."""

    #: The path named in "Dumping ROOT ..." and in the volume header's filesys.
    root: str

    def walk(self, numbering: Numbering, *, exclude: Iterable[int] = (), nodump: bool = False) -> dict[int, Node]:
        """Pass I's walk: every inode numbered, each directory with its entries."""
        ...

    def block_size(self) -> int:
        """The file system's block size, for dump's estimate."""
        ...

    def open(self, node: Node) -> TreeFile:
        """A regular file, open for reading; OSError when it cannot be read."""
        ...

    def flags(self, node: Node) -> int:
        """The ext2 inode flags of any inode (0 where there are none)."""
        ...

    def xattrs(self, node: Node) -> dict[str, bytes]:
        """As :meth:`TreeFile.xattrs`, for an inode not open as a file."""
        ...

    def readlink(self, node: Node) -> bytes:
        """A symbolic link's target; OSError when it cannot be read."""
        ...

    def close(self) -> None: ...


def has_zero_block(data: bytes) -> bool:
    """Whether one of the 1 KiB blocks ``data`` is cut into is all zeros.

    Only blocks whose first byte is zero are compared, so this costs about
    0.6 µs for 64 KiB where searching for a 1 KiB needle costs ten times that
    (the search also looks at every unaligned offset)."""
    heads = data[::TP_BSIZE]
    i = heads.find(0)
    while i >= 0:
        start = i * TP_BSIZE
        if data[start:start + TP_BSIZE] == _ZERO_BLOCK:
            return True
        i = heads.find(0, i + 1)
    return False


def chunk_slices(chunk: bytes) -> list[Slice]:
    """A chunk of whole slices as a tree yields it: one run when no slice of
    it is all zero, else slice by slice (the all-zero ones as holes)."""
    if has_zero_block(chunk):
        return [data_slice(chunk[i:i + TP_BSIZE]) for i in range(0, len(chunk), TP_BSIZE)]
    return [chunk]
