"""File history posts: the FH_ADD_DIR and FH_ADD_NODE bodies of a backup's
(or an image's) names and nodes, in batches.

ndmjob's index wants the root's ``"."`` first, then ``".."`` (both node ==
parent == the root), then every name of every directory; and an ADD_NODE for
every node, the root included (docs/ndmp.md 4.9).  A level 0 of 10,000 files
posts some 20,000 entries: built as message records and encoded field by
field (:mod:`ndmp.xdr`) they took longer than the backup's own bookkeeping,
so each entry is packed here with one ``struct`` call into the same XDR bytes
as the :data:`~ndmp.messages.FhAddDir` and :data:`~ndmp.messages.FhAddNode`
layouts (which decode them: tests/ndmp/test_filehistory.py).
"""

from __future__ import annotations

import stat
import struct
from collections.abc import Iterator, Sequence

from .engine import ROOT_NODE, U64_INVALID, FileEntry, history_stats
from .protocol import FILE_STAT_ATIME_UNS, FILE_STAT_CTIME_UNS, FILE_STAT_GROUP_UNS, FileType, FsType

#: File history entries per FH post.
FH_BATCH = 256

_COUNT = struct.Struct(">I")
#: An ADD_DIR entry up to its name: names<1>, the name's fs_type (UNIX) and length.
_DIR_HEAD = struct.Struct(">IiI")
#: After the name (padded to 4 bytes): node, parent.
_DIR_TAIL = struct.Struct(">QQ")
#: A whole ADD_NODE entry: stats<1> (unsupported, fs_type, ftype, mtime, atime, ctime, owner,
#: group, fattr, size, links), node, fh_info.
_NODE = struct.Struct(">IIiiIIIIIIQIQQ")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")
_U32 = 0xFFFFFFFF
_UNIX = int(FsType.UNIX)
_FTYPES = {stat.S_IFDIR: int(FileType.DIR), stat.S_IFIFO: int(FileType.FIFO), stat.S_IFCHR: int(FileType.CSPEC),
           stat.S_IFBLK: int(FileType.BSPEC), stat.S_IFREG: int(FileType.REG), stat.S_IFLNK: int(FileType.SLINK),
           stat.S_IFSOCK: int(FileType.SOCK)}
_OTHER = int(FileType.OTHER)
#: What an entry without attributes says: only its type is known (atime, ctime and group unsupported).
_UNKNOWN_STAT = (FILE_STAT_ATIME_UNS | FILE_STAT_CTIME_UNS | FILE_STAT_GROUP_UNS, _UNIX)
_UNKNOWN_REST = (_U32, _U32, _U32, _U32, _U32, _U32, U64_INVALID, _U32)


def _batches(parts: list[bytes]) -> Iterator[bytes]:
    for i in range(0, len(parts), FH_BATCH):
        batch = parts[i:i + FH_BATCH]
        yield _COUNT.pack(len(batch)) + b"".join(batch)


def _dir_entry(name: str, node: int, parent: int) -> bytes:
    raw = name.encode("utf-8", "surrogateescape")
    return (_DIR_HEAD.pack(1, _UNIX, len(raw)) + raw + _PAD[len(raw) % 4]
            + _DIR_TAIL.pack(node & U64_INVALID, parent & U64_INVALID))


def dir_bodies(entries: Sequence[FileEntry]) -> Iterator[bytes]:
    """FH_ADD_DIR bodies: every entry's name (the first is the root's ``"."``),
    with ``".."`` of the root second."""
    root = entries[0].node if entries else ROOT_NODE
    parts = [_dir_entry(e.name, e.node, e.parent) for e in entries]
    parts[1:1] = [_dir_entry("..", root, root)]
    return _batches(parts)


def _node_entry(entry: FileEntry) -> bytes:
    st = entry.stat
    node = entry.node & U64_INVALID
    if st is None:
        return _NODE.pack(1, *_UNKNOWN_STAT, _FTYPES[stat.S_IFDIR] if entry.directory else _OTHER,
                          *_UNKNOWN_REST, node, entry.fh_info & U64_INVALID)
    mode = st.mode
    return _NODE.pack(1, 0, _UNIX, _FTYPES.get(stat.S_IFMT(mode), _OTHER), st.mtime & _U32,
                      st.atime & _U32, st.ctime & _U32, st.uid & _U32, st.gid & _U32, stat.S_IMODE(mode),
                      st.size & U64_INVALID, st.nlink & _U32, node, entry.fh_info & U64_INVALID)


def node_bodies(entries: Sequence[FileEntry]) -> Iterator[bytes]:
    """FH_ADD_NODE bodies: one node per inode (its first name's entry)."""
    parts = [_node_entry(e) for e in history_stats(entries).values()]
    return _batches(parts)
