"""Oracle tests: images built with dumptool.format, read by the real Linux restore,
and images made by the real Linux dump, read with dumptool.format.

The small image writer below is test scaffolding, not pydump: it walks a
directory with os calls and hands everything else to dumptool.format.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from dumptool.format import (
    ACL_GROUP_OBJ,
    ACL_MASK,
    ACL_OTHER,
    ACL_USER,
    ACL_USER_OBJ,
    DR_EXTATTRIBUTES,
    DR_NEWHEADER,
    DR_NEWINODEFMT,
    EXT_XATTR,
    ROOTINO,
    TP_BSIZE,
    AclEntry,
    ByteOrder,
    Dinode,
    Dirent,
    RecordType,
    assemble_file,
    build_directory,
    checksum_ok,
    dtype_from_mode,
    end_records,
    file_slices,
    inode_records,
    map_records,
    number_blocks,
    pack_acl_xattr,
    pack_xattr_block,
    parse_directory,
    parse_inode_map,
    symlink_slices,
    unpack_xattr_payload,
    volume_header,
    walk_image,
    xattr_records,
)
from dumptool.livetree import inode_flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/dumptool, for the shared samples
from samples import DATE, DUMP, RESTORE, plant_common_files, real_dump_of, stamp_times  # noqa: E402
from samples import listing as parse_listing  # noqa: E402
from samples import real_restore  # noqa: E402
from samples import xattrs as _xattrs  # noqa: E402

needs_restore = pytest.mark.skipif(not os.access(RESTORE, os.X_OK), reason="real /sbin/restore not installed")
is_root = os.geteuid() == 0


# --- a source tree and a tiny image writer over it ---------------------------------


def _acl(*named: tuple[int, int, int], user=6, group=4, mask=6, other=4) -> bytes:
    entries = [AclEntry(ACL_USER_OBJ, user)]
    entries += [AclEntry(tag, perm, ident) for tag, perm, ident in named]
    entries += [AclEntry(ACL_GROUP_OBJ, group), AclEntry(ACL_MASK, mask), AclEntry(ACL_OTHER, other)]
    return pack_acl_xattr(entries)


def make_tree(root: Path) -> None:
    """A tree with every file type, holes, hard links, xattrs and ACLs."""
    plant_common_files(root)
    (root / "many").mkdir()
    (root / "zeros").write_bytes(bytes(1500))
    os.symlink("x" * 1500, root / "verylonglink")
    for i in range(60):
        (root / "many" / (f"f{i:03d}-" + "n" * (i * 3))).write_bytes(b"%d\n" % i)
    (root / "many" / ("L" * 254)).write_bytes(b"long name\n")
    if is_root:
        os.mknod(root / "chardev", 0o620 | stat.S_IFCHR, os.makedev(4, 5))
        os.mknod(root / "blkdev", 0o660 | stat.S_IFBLK, os.makedev(259, 300))
        os.chown(root / "hello.txt", 1234, 5678)
    os.chmod(root / "dir1" / "sub" / "file", 0o4755)
    os.setxattr(root / "hello.txt", "user.foo", b"bar")
    os.setxattr(root / "hello.txt", "system.posix_acl_access", _acl((ACL_USER, 6, 1234)))
    os.setxattr(root / "dir2", "system.posix_acl_default", _acl((ACL_USER, 5, 77), user=7, group=5, mask=5, other=5))
    os.setxattr(root / "dir2", "user.note", b"a directory xattr")
    os.setxattr(root / "empty", "user.empty-value", b"")
    os.setxattr(root / "zeros", "user.big", bytes(range(256)) * 10)  # a 3 KiB payload
    os.setxattr(root / "dir1", "trusted.t", b"T")
    stamp_times(root)


def write_image(src: Path, byte_order: ByteOrder = ByteOrder.LITTLE, per_header: int = 512) -> tuple[bytes, dict[str, int]]:
    """A level-0 image of *src*, and the names -> inode numbers restore should list."""
    numbers: dict[tuple[int, int], int] = {}
    info: dict[int, tuple[Path, os.stat_result]] = {}
    children: dict[int, list[Dirent]] = {}
    parents: dict[int, int] = {ROOTINO: ROOTINO}
    listing: dict[str, int] = {".": ROOTINO}

    def number(path: Path) -> int:
        st = os.lstat(path)
        key = (st.st_dev, st.st_ino)
        if key not in numbers:
            numbers[key] = ROOTINO if not numbers else len(numbers) + 2
            info[numbers[key]] = (path, st)
        return numbers[key]

    def visit(path: Path, rel: str) -> None:
        ino = number(path)
        children[ino] = []
        for name in sorted(os.listdir(path)):
            child = path / name
            cino = number(child)
            cst = info[cino][1]
            children[ino].append(Dirent(cino, os.fsencode(name), dtype_from_mode(cst.st_mode)))
            listing[f"{rel}/{name}"] = cino
            if stat.S_ISDIR(cst.st_mode):
                parents[cino] = ino
                visit(child, f"{rel}/{name}")

    visit(src, ".")
    maxino = max(info) + 1
    tape = volume_header(date=DATE, label=b"oracle", filesys=b"/src", dev=b"/dev/test", host=b"testhost")
    items: list = [tape]
    items += map_records(tape, RecordType.TS_CLRI, info, maxino)
    items += map_records(tape, RecordType.TS_BITS, info, maxino)
    dirs = sorted(i for i in info if stat.S_ISDIR(info[i][1].st_mode))
    others = sorted(i for i in info if i not in children)
    for ino in dirs + others:
        path, st = info[ino]
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            data = build_directory(ino, parents[ino], children[ino], byte_order=byte_order)
            dinode = Dinode.from_stat(st, flags=inode_flags(os.fsencode(path), st), size=len(data))
            slices = file_slices(data, holes=False)
        elif stat.S_ISREG(mode):
            dinode = Dinode.from_stat(st, flags=inode_flags(os.fsencode(path), st))
            slices = file_slices(path.read_bytes())
        elif stat.S_ISLNK(mode):
            dinode = Dinode.from_stat(st)
            slices = symlink_slices(os.fsencode(os.readlink(path)))
        else:
            dinode = Dinode.from_stat(st)
            slices = []
        items += inode_records(tape, ino, dinode, slices, per_header=per_header)
        xattrs = _xattrs(path) if not stat.S_ISLNK(mode) else {}
        if xattrs:
            items += xattr_records(tape, ino, dinode, pack_xattr_block(xattrs))
    items += end_records(tape, len(items))
    return b"".join(number_blocks(items, 0, byte_order)), listing


def assert_same_tree(src: Path, out: Path) -> None:
    links: dict[int, int] = {}
    for sp in [src, *sorted(src.rglob("*"))]:
        op = out / sp.relative_to(src)
        s, o = os.lstat(sp), os.lstat(op)
        assert stat.S_IFMT(s.st_mode) == stat.S_IFMT(o.st_mode), sp
        if not stat.S_ISLNK(s.st_mode):
            assert s.st_mode == o.st_mode, sp
            assert _xattrs(sp) == _xattrs(op), sp
            assert s.st_mtime_ns // 1000 == o.st_mtime_ns // 1000, sp
        assert (s.st_uid, s.st_gid) == (o.st_uid, o.st_gid), sp
        if stat.S_ISREG(s.st_mode):
            assert sp.read_bytes() == op.read_bytes(), sp
            assert links.setdefault(s.st_ino, o.st_ino) == o.st_ino, f"hard link broken at {sp}"
        elif stat.S_ISLNK(s.st_mode):
            assert os.readlink(sp) == os.readlink(op)
        elif stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
            assert s.st_rdev == o.st_rdev, sp


# --- our images, real restore -------------------------------------------------------


@needs_restore
@pytest.mark.parametrize("byte_order", [ByteOrder.LITTLE, ByteOrder.BIG])
def test_real_restore_lists_extracts_and_compares_our_image(tmp_path: Path, byte_order: ByteOrder) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    image, listing = write_image(src, byte_order)
    img = tmp_path / "our.dump"
    img.write_bytes(image)

    listed = real_restore("-t", "-f", str(img), cwd=tmp_path, tmp=tmp_path, check=False)
    assert listed.returncode == 0, listed.stderr
    assert parse_listing(listed.stdout) == listing
    assert "Level 0 dump of /src on testhost:/dev/test" in listed.stdout + listed.stderr
    assert "Label: oracle" in listed.stdout + listed.stderr

    out = tmp_path / "out"
    out.mkdir()
    extracted = real_restore("-x", "-a", "-o", "-f", str(img), cwd=out, tmp=tmp_path, check=False)
    assert extracted.returncode == 0, extracted.stderr
    assert "EA" not in extracted.stderr and "ACL" not in extracted.stderr, extracted.stderr
    assert_same_tree(src, out)
    assert os.stat(out / "sparse").st_blocks * 512 < 64 * 1024, "holes were not restored as holes"

    # restore copies -D into a 64-byte c_filesys: keep it short (relative)
    compared = real_restore("-C", "-D", "src", "-f", str(img), cwd=tmp_path, tmp=tmp_path, check=False)
    assert compared.returncode == 0, compared.stdout + compared.stderr


@needs_restore
def test_real_restore_takes_addr_headers_split_below_512(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(os.urandom(300 * 1024 + 17))
    image, listing = write_image(src, per_header=100)
    img = tmp_path / "split.dump"
    img.write_bytes(image)
    out = tmp_path / "out"
    out.mkdir()
    extracted = real_restore("-x", "-a", "-o", "-f", str(img), cwd=out, tmp=tmp_path, check=False)
    assert extracted.returncode == 0, extracted.stderr
    assert (out / "d" / "f").read_bytes() == (src / "d" / "f").read_bytes()


# --- real dump's images, our reader ---------------------------------------------------


@pytest.mark.root
@pytest.mark.skipif(not (is_root and os.access(DUMP, os.X_OK) and shutil.which("losetup") and shutil.which("mke2fs")),
                    reason="needs root, /sbin/dump, losetup and mke2fs")
@pytest.mark.parametrize("inode_size", [256, 128], ids=["in-inode-xattrs", "block-xattrs"])
def test_we_read_every_record_of_a_real_dump(tmp_path: Path, inode_size: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    plant_common_files(src, link_dir="dir1")
    (src / "acldir").mkdir()
    (src / "xa").write_bytes(b"data\n")
    os.setxattr(src / "xa", "user.foo", b"bar")
    os.setxattr(src / "xa", "system.posix_acl_access", _acl((ACL_USER, 6, 1234)))
    os.setxattr(src / "acldir", "system.posix_acl_default", _acl((ACL_USER, 5, 77), user=7, group=5, mask=5, other=5))
    image = real_dump_of(src, tmp_path, size="8M", inode_size=inode_size).read_bytes()

    records = list(walk_image(image))  # every header's magic and checksum is checked here
    types = [r.header.c_type for r in records]
    tape = records[0].header
    assert types[:3] == [RecordType.TS_TAPE, RecordType.TS_CLRI, RecordType.TS_BITS]
    assert tape.c_flags == DR_NEWHEADER | DR_NEWINODEFMT and tape.c_volume == 1 and tape.c_ddate == 0
    assert len(image) % (tape.c_ntrec * TP_BSIZE) == 0
    end = types.index(RecordType.TS_END)
    assert set(types[end:]) == {RecordType.TS_END}
    assert len(types) - end == tape.c_ntrec - records[end].index % tape.c_ntrec
    for r in records:
        assert checksum_ok(image[r.index * TP_BSIZE:(r.index + 1) * TP_BSIZE])
        assert (r.header.c_date, r.header.c_ntrec) == (tape.c_date, tape.c_ntrec)
        if r.header.c_type not in (RecordType.TS_TAPE,):
            assert r.header.c_flags & DR_NEWINODEFMT
    dumped = parse_inode_map(b"".join(records[2].blocks))
    in_use = parse_inode_map(b"".join(records[1].blocks))
    assert dumped <= in_use and ROOTINO in dumped

    # Group the inode records: TS_INODE + TS_ADDR..., then EA records.
    files: dict[int, list] = {}
    xattrs: dict[int, dict[bytes, bytes]] = {}
    order: list[int] = []
    for r in records[3:end]:
        h = r.header
        if h.is_extattr:
            assert h.c_extattributes == EXT_XATTR and h.c_flags & DR_EXTATTRIBUTES
            payload = b"".join(r.blocks)[: h.c_dinode.size]
            xattrs.setdefault(h.c_inumber, {}).update(unpack_xattr_payload(payload))
        elif h.c_type == RecordType.TS_INODE:
            files[h.c_inumber] = [r]
            order.append(h.c_inumber)
        else:
            assert h.c_type == RecordType.TS_ADDR and h.c_inumber == order[-1]
            files[h.c_inumber].append(r)
    assert set(order) == dumped
    is_dir = [stat.S_ISDIR(files[i][0].header.c_dinode.mode) for i in order]
    assert is_dir == sorted(is_dir, reverse=True), "directories first"
    assert order[: sum(is_dir)] == sorted(order[: sum(is_dir)]) and order[sum(is_dir):] == sorted(order[sum(is_dir):])

    # Names from the directories, starting at the root, as restore builds them.
    names: dict[str, int] = {}

    def walk(ino: int, rel: str) -> None:
        data = assemble_file(files[ino])
        assert len(data) % 512 == 0
        entries = parse_directory(data)
        assert [e.name for e in entries[:2]] == [b".", b".."]
        for e in entries[2:]:
            if e.ino not in dumped:
                continue
            path = f"{rel}/{os.fsdecode(e.name)}"
            names[path] = e.ino
            if stat.S_ISDIR(files[e.ino][0].header.c_dinode.mode):
                walk(e.ino, path)

    walk(ROOTINO, ".")
    listed = real_restore("-t", "-f", str(tmp_path / "real.dump"), cwd=tmp_path, tmp=tmp_path, check=False)
    assert parse_listing(listed.stdout) == {".": ROOTINO, **names}

    for rel, ino in names.items():
        if rel == "./lost+found":
            continue
        sp = src / rel
        st = os.lstat(sp)
        dinode = files[ino][0].header.c_dinode
        assert dinode.mode == st.st_mode, rel
        if not stat.S_ISDIR(st.st_mode):
            assert dinode.size == st.st_size, rel
        assert (dinode.uid, dinode.gid) == (st.st_uid, st.st_gid)
        if stat.S_ISREG(st.st_mode):
            assert assemble_file(files[ino]) == sp.read_bytes(), rel
        elif stat.S_ISLNK(st.st_mode):
            assert assemble_file(files[ino]) == os.fsencode(os.readlink(sp)), rel
        expected = {os.fsencode(n): v for n, v in _xattrs(sp).items()} if not stat.S_ISLNK(st.st_mode) else {}
        assert xattrs.get(ino, {}) == expected, rel
    assert xattrs[names["./xa"]][b"user.foo"] == b"bar"
