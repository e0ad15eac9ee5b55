"""The file history bodies (ndmp.filehistory, packed entry by entry) are the
bytes the generic XDR layouts encode, and decode back to every entry."""

from __future__ import annotations

import stat

from ndmp.engine import U64_INVALID, FileEntry, NodeStat
from ndmp.filehistory import FH_BATCH, dir_bodies, node_bodies
from ndmp.messages import FhAddDir, FhAddNode, FhDir, FhNode, FileName, FileStat
from ndmp.protocol import FileType, FsType
from ndmp.xdr import decode, encode


def _stat(mode: int, size: int = 5, nlink: int = 1) -> NodeStat:
    return NodeStat(mode, 1000, 0xFFFFFFFE, size, 1_700_000_000, 1_700_000_001, 1_700_000_002, nlink)


ENTRIES = [
    FileEntry(2, 2, ".", _stat(stat.S_IFDIR | 0o755, 1024, 3), directory=True),
    FileEntry(11, 2, "d", _stat(stat.S_IFDIR | 0o700, 2048, 2), directory=True),
    FileEntry(12, 2, "abc", _stat(stat.S_IFREG | 0o644, 1 << 40), (7 << 32) | 9),
    FileEntry(13, 11, "abcd", _stat(stat.S_IFLNK | 0o777), (7 << 32) | 11),
    FileEntry(14, 11, "caf\u00e9 \udcff", _stat(stat.S_IFIFO | 0o600), (7 << 32) | 12),  # a non-UTF-8 byte
    FileEntry(12, 11, "hard link", _stat(stat.S_IFREG | 0o644, 1 << 40, 2), (7 << 32) | 9),
    FileEntry(15, 11, "dev", _stat(stat.S_IFCHR | 0o600, 0)),
    FileEntry(16, 2, "lost", None),  # no attributes known
    FileEntry(17, 2, "lostdir", None, directory=True),
]

FTYPE = {stat.S_IFDIR: FileType.DIR, stat.S_IFREG: FileType.REG, stat.S_IFLNK: FileType.SLINK,
         stat.S_IFIFO: FileType.FIFO, stat.S_IFCHR: FileType.CSPEC}


def _expected_stat(entry: FileEntry) -> FileStat:
    st = entry.stat
    if st is None:
        return FileStat(unsupported=0x7, fs_type=FsType.UNIX,
                        ftype=FileType.DIR if entry.directory else FileType.OTHER, mtime=0xFFFFFFFF,
                        atime=0xFFFFFFFF, ctime=0xFFFFFFFF, owner=0xFFFFFFFF, group=0xFFFFFFFF,
                        fattr=0xFFFFFFFF, size=U64_INVALID, links=0xFFFFFFFF)
    return FileStat(unsupported=0, fs_type=FsType.UNIX, ftype=FTYPE[stat.S_IFMT(st.mode)], mtime=st.mtime,
                    atime=st.atime, ctime=st.ctime, owner=st.uid, group=st.gid, fattr=stat.S_IMODE(st.mode),
                    size=st.size, links=st.nlink)


def test_add_dir_bodies_are_the_layouts_bytes_dot_then_dotdot_first() -> None:
    (body,) = dir_bodies(ENTRIES)
    names = [(e.name, e.node, e.parent) for e in ENTRIES]
    names[1:1] = [("..", 2, 2)]
    expected = FhAddDir([FhDir([FileName(FsType.UNIX, n)], node, parent) for n, node, parent in names])
    assert body == encode(expected)
    assert [(d.names[0].unix_name, d.node, d.parent) for d in decode(FhAddDir, body).dirs] == names
    # the "." entry as captured from a session ndmjob indexed (docs/ndmp.md 4.9)
    assert body[4:36] == bytes.fromhex("00000001 00000000 00000001 2e000000 0000000000000002 0000000000000002"
                                       .replace(" ", ""))


def test_add_node_bodies_are_the_layouts_bytes_one_per_node() -> None:
    (body,) = node_bodies(ENTRIES)
    firsts = {}
    for e in ENTRIES:
        firsts.setdefault(e.node, e)
    expected = FhAddNode([FhNode([_expected_stat(e)], e.node, e.fh_info) for e in firsts.values()])
    assert body == encode(expected)
    nodes = decode(FhAddNode, body).nodes
    assert [n.node for n in nodes] == [2, 11, 12, 13, 14, 15, 16, 17]
    assert nodes[2].fh_info == (7 << 32) | 9 and nodes[2].stats[0].size == 1 << 40
    assert nodes[1].fh_info == U64_INVALID and nodes[1].stats[0].ftype == FileType.DIR


def test_bodies_are_batched() -> None:
    many = [ENTRIES[0]] + [FileEntry(100 + i, 2, f"f{i}", _stat(stat.S_IFREG | 0o644), i) for i in range(600)]
    dirs = [decode(FhAddDir, body).dirs for body in dir_bodies(many)]
    assert [len(d) for d in dirs] == [FH_BATCH, FH_BATCH, 602 - 2 * FH_BATCH]
    assert [d.names[0].unix_name for batch in dirs for d in batch][:3] == [".", "..", "f0"]
    nodes = [decode(FhAddNode, body).nodes for body in node_bodies(many)]
    assert [len(n) for n in nodes] == [FH_BATCH, FH_BATCH, 601 - 2 * FH_BATCH]
    assert [n.fh_info for batch in nodes for n in batch][1:] == list(range(600))
