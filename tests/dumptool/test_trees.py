"""The engine's two seams: what a dump reads (a Tree) and who hears of its files (FileHistory).

``Dump`` reads its source only through the :class:`~dumptool.trees.Tree`
protocol: a tree that wraps the live one and answers for it gives the same
image byte for byte, a file it cannot open is dumped as a hole with a
warning, and dump.py itself makes no file system call.  File history
observers given in :class:`~dumptool.dump.DumpOptions` hear of every
directory and every other inode, at the positions the ``-Q`` map names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import dumptool.dump
from dumptool.dump import Dump, DumpOptions
from dumptool.format import TP_BSIZE, ByteOrder, Dirent, Header, RecordType, parse_qfa
from dumptool.history import RecordPosition
from dumptool.livetree import LiveFile, LiveTree
from dumptool.traverse import Node, Numbering, Stat
from samples import plant_common_files, stamp_times


def sample(root: Path) -> Path:
    root.mkdir()
    plant_common_files(root)
    (root / "dir1" / "data").write_bytes(os.urandom(70 * TP_BSIZE))
    os.setxattr(root / "hello.txt", "user.colour", b"blue")
    stamp_times(root)
    return root


class CountingTree:
    """The live tree, with every call the dump makes of it counted."""

    def __init__(self, source: Path, refuse: bytes | None = None) -> None:
        self.inner = LiveTree(source)
        self.root = self.inner.root
        self.calls: dict[str, int] = {}
        self.refuse = refuse
        self.closed = False

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def walk(self, numbering: Numbering, *, exclude: Iterable[int] = (), nodump: bool = False) -> dict[int, Node]:
        self._count("walk")
        return self.inner.walk(numbering, exclude=exclude, nodump=nodump)

    def block_size(self) -> int:
        self._count("block_size")
        return self.inner.block_size()

    def open(self, node: Node) -> LiveFile:
        self._count("open")
        if self.refuse is not None and node.path.endswith(self.refuse):
            raise PermissionError(13, "Permission denied")
        return self.inner.open(node)

    def flags(self, node: Node) -> int:
        self._count("flags")
        return self.inner.flags(node)

    def xattrs(self, node: Node) -> dict[str, bytes]:
        self._count("xattrs")
        return self.inner.xattrs(node)

    def readlink(self, node: Node) -> bytes:
        self._count("readlink")
        return self.inner.readlink(node)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


def image(src: Path, out: Path, **options: object) -> tuple[bytes, Dump]:
    dump = Dump(DumpOptions(source=str(src), output=str(out), dumpdates=str(out) + ".dates", quiet=True,
                            **options), warn=lambda line: None)
    dump.date = 1_750_000_000  # both images name the same dump
    dump.run()
    return out.read_bytes(), dump


def test_a_tree_passed_in_the_options_is_all_the_dump_reads(tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    image(src, tmp_path / "first")  # the first reads of directories and links move their atimes
    plain, _ = image(src, tmp_path / "plain")
    tree = CountingTree(src)
    through, dump = image(src, tmp_path / "through", tree=tree)
    assert through == plain
    files = sum(1 for p in src.rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_nlink == 1)
    assert tree.calls["walk"] == 1 and tree.calls["open"] >= files and tree.calls["readlink"] == 2
    assert dump.source == str(src) and not tree.closed  # the caller's tree: the caller closes it
    # dump.py reads nothing by itself
    code = Path(dumptool.dump.__file__).read_text()
    assert not re.search(r"\bos\.(open|pread|lseek|listxattr|getxattr|readlink|statvfs|scandir|lstat)\b", code)


def test_a_file_the_tree_cannot_open_is_a_hole_with_a_warning(tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    warnings: list[str] = []
    dump = Dump(DumpOptions(source=str(src), output=str(tmp_path / "img"), quiet=True,
                            tree=CountingTree(src, refuse=b"/dir1/data")), warn=warnings.append)
    dump.run()
    assert warnings == [f"cannot read {src}/dir1/data: Permission denied; dumped as a hole"]


class Recorder:
    """A file history observer that keeps what it hears."""

    def __init__(self) -> None:
        self.front = b""
        self.dirs: dict[int, tuple[list[bytes], bytes]] = {}
        self.nodes: list[tuple[int, int, int, int | None]] = []
        self.trailer: bytes | None = None
        self.closed = 0

    def begin(self, front: bytes) -> None:
        self.front = front

    def add_dir(self, ino: int, entries: Sequence[Dirent], blocks: bytes) -> None:
        self.dirs[ino] = ([e.name for e in entries], blocks)

    def add_node(self, ino: int, node: Stat, position: RecordPosition) -> None:
        assert node.st_mode & 0o170000 != 0o040000
        self.nodes.append((ino, position.volume, position.block, position.address))

    def finish(self, trailer: bytes) -> None:
        self.trailer = trailer

    def close(self) -> None:
        self.closed += 1


def test_file_history_observers_hear_every_directory_and_inode_where_qfa_puts_it(tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    seen = Recorder()
    data, dump = image(src, tmp_path / "img", qfa=str(tmp_path / "qfa"), history=(seen,), ntrec=10)
    plan = dump.plan
    # the front and the trailer are the image's first and last blocks
    assert seen.front and data.startswith(seen.front) and len(seen.front) % TP_BSIZE == 0
    assert seen.trailer and data.endswith(seen.trailer)
    assert Header.unpack(seen.trailer[:TP_BSIZE], ByteOrder.LITTLE).c_type == RecordType.TS_END
    assert seen.closed >= 1
    # every directory with its names, its blocks as they are on the image
    assert set(seen.dirs) == set(plan.directories)
    for ino, (names, blocks) in seen.dirs.items():
        assert names == [e.name for e in plan.nodes[ino].entries] and blocks in data
        head = Header.unpack(blocks[:TP_BSIZE], ByteOrder.LITTLE)
        assert head.c_type == RecordType.TS_INODE and head.c_inumber == ino
    assert set(seen.dirs[2][0]) >= {b"dir1", b"hello.txt"}
    # every other inode, its header at the block named, in the record -Q names
    assert sorted(ino for ino, *_ in seen.nodes) == sorted(plan.files)
    for ino, volume, block, address in seen.nodes:
        head = Header.unpack(data[block * TP_BSIZE:(block + 1) * TP_BSIZE], ByteOrder.LITTLE)
        assert volume == 1 and head.c_inumber == ino and head.c_type == RecordType.TS_INODE
        assert address == block // 10 * 10 * TP_BSIZE
    qfa = parse_qfa((tmp_path / "qfa").read_text())
    firsts: dict[int, int] = {}
    for ino, _volume, _block, address in seen.nodes:
        firsts.setdefault(address, ino)
    assert [(e.ino, e.position) for e in qfa.entries] == sorted((ino, at) for at, ino in firsts.items())
