"""A mutation fuzzer for dump images: pyrestore against the real restore on damaged images.

It builds one small source tree (files, hard links, symlinks, devices, a
fifo, xattrs, POSIX ACLs, a sparse file, a file long enough for a
``TS_ADDR``), dumps it four ways (pydump plain and ``-z``, the real dump
0.4b47 of an ext4 loop copy plain and ``-z``), damages copies of those
images (:data:`KINDS`) and runs ``pyrestore -t``, ``-x`` (into a fresh
target) and ``-C`` on each mutant, then the real ``restore -x -y`` in a
target of its own.  Each mutant gives one :class:`FuzzResult`: tracebacks
(a Python traceback on pyrestore's stderr), hangs (a timeout), escapes
(anything created or changed outside the target: the targets live in a
sandbox beside a sentinel copy of the source, and the whole work folder but
the targets and the temporary folders is compared before and after) and
the regular files each tool restored with the right bytes.

Used by ``tests/dumptool/test_image_fuzz.py`` (a short seeded run) and
``bench/fuzz.py`` (long runs).  Needs root, ``mke2fs``, ``losetup``,
``setfacl`` and ``/sbin/dump``/``/sbin/restore``.

A compressed image is mutated two ways: byte flips and truncation hit its
bytes as stored; every other kind decodes its records into the stream of
1 KiB blocks, mutates that and compresses it again (zlib), so the damage
lands in the headers and blocks themselves and not just in zlib's input.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import random
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import dumptool
from dumptool.format import TP_BSIZE, ByteOrder, RecordType, is_header, seal
from dumptool.format.constants import COMPRESS_ZLIB, DR_COMPRESSED
from dumptool.format.tapebuf import TapeBuf, decode_payload, pack_tapebuf, unpack_tapebuf

from samples import RESTORE, ext4_volume

REPO = Path(dumptool.__file__).resolve().parents[1]
"""The checkout whose pyrestore is fuzzed: the one this process imports dumptool from."""
PYRESTORE = str(Path(sys.executable).parent / "pyrestore")
PYDUMP = str(Path(sys.executable).parent / "pydump")
TIMEOUT = 30.0
"""Seconds one tool may take on one mutant before it counts as a hang."""
MEMORY = 2 << 30
"""Address space each tool run may have: a huge size field must not take the machine's memory."""

# Header fields (dump-format.md section 2.1; our images are little-endian).  The
# mutants hold values no writer may pack (dumptool.format.Header refuses them),
# so they are patched in place at these offsets and the checksum set after.
C_TYPE, C_INUMBER, C_COUNT, C_ADDR, C_FLAGS, C_NTREC = 0, 20, 160, 164, 888, 896
DI_MODE, DI_NLINK, DI_SIZE = 32, 34, 40
LE = ByteOrder.LITTLE

KINDS = ("byte_flip", "truncate", "zero_record", "swap_records", "dup_record",
         "huge_field", "unknown_type", "damaged_map", "hostile_name")
"""The mutant classes, in the order the tables list them."""

ABSOLUTE_NAME = b"/tmp/fuzz-escape"
"""The absolute name hostile_name gives an entry (cut to the entry's room);
the sandbox also watches every path it can be cut to."""


@dataclasses.dataclass(frozen=True)
class FuzzResult:
    """What became of one mutant.

    ``outcome`` is the worst of what pyrestore did ("escape" > "hang" >
    "traceback" > "ok"); ``problems`` names each bad run ("traceback -x",
    "hang -C", "escape -x: created ../x"); ``files`` is the number of regular
    files (paths) of the source tree; ``recovered`` and ``recovered_real``
    count those that ``pyrestore -x`` and the real ``restore -x`` put back
    with the right bytes.  ``mutant`` is where the damaged image was kept
    when something went wrong (else empty)."""

    index: int
    kind: str
    image: str
    mutation: str
    outcome: str
    problems: tuple[str, ...]
    detail: str
    files: int
    recovered: int
    recovered_real: int
    mutant: str = ""


# -- the source tree and the four images ------------------------------------------------------


def make_tree(root: Path) -> None:
    """Every kind of node a dump holds, small enough for a fast run."""
    root.mkdir()
    (root / "dir1" / "sub").mkdir(parents=True)
    (root / "dir2").mkdir()
    (root / "emptydir").mkdir()
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "empty").write_bytes(b"")
    (root / "dir1" / "sub" / "file").write_bytes(b"sub\n")
    (root / "dir1" / "long.bin").write_bytes(bytes((i * 7) % 251 for i in range(530 * 1024 + 77)))
    for n in range(12):
        d = root / ("dir1" if n % 3 == 0 else "dir2" if n % 3 == 1 else "dir1/sub")
        (d / f"f{n:02d}").write_bytes(hashlib.sha256(b"%d" % n).digest() * (1 + 37 * n))
    (root / ("L" * 254)).write_bytes(b"long name\n")
    with open(root / "sparse", "wb") as f:
        f.truncate(1024 * 1024)
        f.seek(300 * 1024)
        f.write(b"MID" * 500)
    os.symlink("hello.txt", root / "shortlink")
    os.symlink("a" * 70 + "/target", root / "longlink")
    os.symlink("dir1/sub", root / "dirlink")
    os.link(root / "hello.txt", root / "dir2" / "hardlink")
    os.link(root / "dir1" / "f00", root / "dir2" / "f00link")
    os.mkfifo(root / "fifo")
    os.mknod(root / "chardev", 0o620 | stat.S_IFCHR, os.makedev(4, 5))
    os.mknod(root / "blkdev", 0o660 | stat.S_IFBLK, os.makedev(8, 1))
    os.setxattr(root / "hello.txt", "user.foo", b"bar")
    os.setxattr(root / "dir1", "user.dirnote", b"on a directory")
    os.setxattr(root / "dir1" / "sub" / "file", "trusted.t", b"T" * 300)
    subprocess.run(["setfacl", "-m", "u:1234:rw", str(root / "hello.txt")], check=True)
    subprocess.run(["setfacl", "-m", "u:77:rx", "-d", "-m", "u:77:rx", str(root / "dir2")], check=True)
    os.chown(root / "dir1" / "f03", 1234, 5678)
    os.chmod(root / "dir1" / "sub" / "file", 0o4755)


def regular_files(root: Path) -> dict[str, bytes]:
    """``relative path -> bytes`` of every regular file under *root*."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def build_images(workdir: Path) -> tuple[Path, dict[str, Path]]:
    """``(source tree, {name: image})`` in *workdir*, built once and reused."""
    src = workdir / "src"
    images = {name: workdir / "images" / f"{name}.dump"
              for name in ("pydump", "pydump-z", "realdump", "realdump-z")}
    if src.is_dir() and all(p.exists() for p in images.values()):
        return src, images
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(workdir / "images", ignore_errors=True)
    make_tree(src)
    (workdir / "images").mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for name, extra in (("pydump", []), ("pydump-z", ["-z"])):
        subprocess.run([PYDUMP, "-0", "-q", *extra, "-f", str(images[name]), str(src)], check=True,
                       env=env, stdin=subprocess.DEVNULL, capture_output=True)
    with ext4_volume(src, workdir / "images" / "fs.img", "8M") as loop:
        loop.dump(0, images["realdump"])
        loop.dump(0, images["realdump-z"], "-z")
    (workdir / "images" / "fs.img").unlink()
    return src, images


# -- the image as blocks ------------------------------------------------------------------------


@dataclasses.dataclass
class Image:
    """An image as its stream of 1 KiB blocks (decoded when compressed)."""

    blocks: list[bytes]
    ntrec: int
    compressed: bool

    @classmethod
    def parse(cls, raw: bytes) -> "Image":
        first = raw[:TP_BSIZE]
        ntrec = struct.unpack_from("<i", first, C_NTREC)[0] or 10
        compressed = bool(struct.unpack_from("<i", first, C_FLAGS)[0] & DR_COMPRESSED)
        if not compressed:
            return cls([raw[i:i + TP_BSIZE] for i in range(0, len(raw), TP_BSIZE)], ntrec, False)
        record = ntrec * TP_BSIZE
        data = bytearray(raw[:record])
        pos = record
        while pos + 4 <= len(raw):
            buf = unpack_tapebuf(raw[pos:pos + 4], LE)
            data += decode_payload(buf, raw[pos + 4:pos + 4 + buf.length], record)
            pos += 4 + buf.length
        return cls([bytes(data[i:i + TP_BSIZE]) for i in range(0, len(data), TP_BSIZE)], ntrec, True)

    def encode(self, bad_length: int | None = None) -> bytes:
        """The image as stored; *bad_length*: the index of a record whose
        tapebuf word gets a huge length (compressed images)."""
        data = b"".join(self.blocks)
        if not self.compressed:
            return data
        record = self.ntrec * TP_BSIZE
        out = bytearray(data[:record])
        for n, start in enumerate(range(record, len(data), record)):
            payload = zlib.compress(data[start:start + record])
            length = (1 << 28) - 1 if n == bad_length else len(payload)
            out += pack_tapebuf(TapeBuf(True, COMPRESS_ZLIB, length), LE) + payload
        return bytes(out)

    def headers(self) -> list[int]:
        return [i for i, b in enumerate(self.blocks) if is_header(b)]

    def headers_of(self, *types: RecordType) -> list[int]:
        return [i for i in self.headers() if struct.unpack_from("<i", self.blocks[i], C_TYPE)[0] in types]

    def records(self) -> int:
        return -(-len(self.blocks) // self.ntrec)


def _set(block: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(block)
    struct.pack_into("<" + fmt, out, offset, value)
    return seal(out, LE)


def _pick_block(rng: random.Random, image: Image) -> int:
    """A header half the time (damage there matters most), else any block."""
    if rng.random() < 0.5:
        return rng.choice(image.headers())
    return rng.randrange(len(image.blocks))


# -- the mutations: each returns (mutant bytes, a description that rebuilds it) ----------------


def mutate_byte_flip(rng: random.Random, raw: bytes) -> tuple[bytes, str]:
    out = bytearray(raw)
    done = []
    for _ in range(rng.choice((1, 1, 2, 4))):
        if rng.random() < 0.5:   # the first blocks hold TS_TAPE, TS_CLRI, TS_BITS and the directories
            at = rng.randrange(min(len(out), 12 * TP_BSIZE))
        else:
            at = rng.randrange(len(out))
        new = out[at] ^ rng.randrange(1, 256)
        done.append(f"[{at}] {out[at]:#04x}->{new:#04x}")
        out[at] = new
    return bytes(out), "flip " + " ".join(done)


def mutate_truncate(rng: random.Random, raw: bytes) -> tuple[bytes, str]:
    at = rng.randrange(1, len(raw))
    if rng.random() < 0.3:
        at -= at % TP_BSIZE
    return raw[:at], f"truncate to {at} of {len(raw)} bytes"


def mutate_zero_record(rng: random.Random, image: Image) -> tuple[bytes, str]:
    if rng.random() < 0.25:   # a whole record of ntrec blocks
        rec = rng.randrange(image.records())
        first = rec * image.ntrec
        last = min(first + image.ntrec, len(image.blocks))
        for i in range(first, last):
            image.blocks[i] = bytes(TP_BSIZE)
        return image.encode(), f"zero blocks {first}..{last - 1} (record {rec})"
    i = _pick_block(rng, image)
    image.blocks[i] = bytes(TP_BSIZE)
    return image.encode(), f"zero block {i}"


def mutate_swap_records(rng: random.Random, image: Image) -> tuple[bytes, str]:
    a = _pick_block(rng, image)
    b = _pick_block(rng, image) if rng.random() < 0.5 else min(len(image.blocks) - 1, a + rng.randint(1, 3))
    image.blocks[a], image.blocks[b] = image.blocks[b], image.blocks[a]
    return image.encode(), f"swap blocks {a} and {b}"


def mutate_dup_record(rng: random.Random, image: Image) -> tuple[bytes, str]:
    a = _pick_block(rng, image)
    at = a + 1 if rng.random() < 0.6 else rng.randrange(len(image.blocks))
    image.blocks.insert(at, image.blocks[a])
    return image.encode(), f"copy of block {a} inserted at {at}"


_HUGE = (0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 513, 1 << 20)


def mutate_huge_field(rng: random.Random, image: Image) -> tuple[bytes, str]:
    if image.compressed and rng.random() < 0.2:
        rec = rng.randrange(image.records() - 1)
        return image.encode(bad_length=rec), f"tapebuf length of compressed record {rec + 1} set to 2**28-1"
    i = rng.choice(image.headers())
    block = image.blocks[i]
    field = rng.choice(("c_count", "c_count", "di_size", "di_size", "c_inumber", "c_ntrec", "di_nlink"))
    if field == "c_count":
        value = rng.choice(_HUGE)
        block = _set(block, C_COUNT, "I", value)
    elif field == "di_size":
        value = rng.choice(((1 << 64) - 1, 1 << 63, (1 << 63) - 1, 1 << 40, 1 << 32))
        block = _set(block, DI_SIZE, "Q", value)
    elif field == "c_inumber":
        value = rng.choice(_HUGE)
        block = _set(block, C_INUMBER, "I", value)
    elif field == "c_ntrec":
        value = rng.choice((0x7FFFFFFF, 1 << 20, 1025, 0, 0xFFFFFFFF))
        block = _set(block, C_NTREC, "I", value)
    else:
        value = rng.choice((0x7FFF, 0xFFFF))
        block = _set(block, DI_NLINK, "H", value)
    image.blocks[i] = block
    return image.encode(), f"{field} of header block {i} (c_type {_type(block)}) = {value:#x}, checksum fixed"


def mutate_unknown_type(rng: random.Random, image: Image) -> tuple[bytes, str]:
    i = rng.choice(image.headers())
    old = _type(image.blocks[i])
    value = rng.choice((0, 7, 8, 100, 0xFFFFFFFF, 0x7FFFFFFF))
    image.blocks[i] = _set(image.blocks[i], C_TYPE, "I", value)
    return image.encode(), f"c_type of header block {i} {old} -> {value:#x}, checksum fixed"


def mutate_damaged_map(rng: random.Random, image: Image) -> tuple[bytes, str]:
    maps = image.headers_of(RecordType.TS_CLRI, RecordType.TS_BITS)
    i = rng.choice(maps)
    name = RecordType(_type(image.blocks[i])).name
    count = struct.unpack_from("<i", image.blocks[i], C_COUNT)[0]
    how = rng.choice(("flip header byte", "flip map bytes", "zero map", "fill map", "c_count",
                      "c_addr 0xff"))
    if how == "flip header byte":   # the case 8: a bad checksum on the map header
        at = rng.randrange(TP_BSIZE)
        block = bytearray(image.blocks[i])
        block[at] ^= rng.randrange(1, 256)
        image.blocks[i] = bytes(block)
        what = f"byte {at} of the header flipped (bad checksum)"
    elif how == "flip map bytes":
        flips = []
        for _ in range(rng.randint(1, 8)):
            b = i + 1 + rng.randrange(max(count, 1))
            at = rng.randrange(TP_BSIZE)
            block = bytearray(image.blocks[b])
            block[at] ^= rng.randrange(1, 256)
            image.blocks[b] = bytes(block)
            flips.append(f"{b}:{at}")
        what = "map bytes flipped at " + ",".join(flips)
    elif how in ("zero map", "fill map"):
        fill = 0 if how == "zero map" else 0xFF
        for b in range(i + 1, i + 1 + count):
            image.blocks[b] = bytes([fill]) * TP_BSIZE
        what = f"all {count} map blocks = {fill:#04x}"
    elif how == "c_count":
        value = rng.choice((0, 1, count + 1, 0x7FFFFFFF, 0xFFFFFFFF))
        image.blocks[i] = _set(image.blocks[i], C_COUNT, "I", value)
        what = f"c_count {count} -> {value:#x}, checksum fixed"
    else:
        block = bytearray(image.blocks[i])
        block[C_ADDR:C_ADDR + max(count, 1)] = b"\xff" * max(count, 1)
        image.blocks[i] = seal(block, LE)
        what = "c_addr bytes = 0xff, checksum fixed"
    return image.encode(), f"{name} at block {i}: {what}"


def _directory_blocks(image: Image, inode: int | None = None) -> list[int]:
    """Indexes of the data blocks of directory inodes (of *inode* only, if given)."""
    out = []
    for i in image.headers_of(RecordType.TS_INODE, RecordType.TS_ADDR):
        block = image.blocks[i]
        mode = struct.unpack_from("<H", block, DI_MODE)[0]
        if not stat.S_ISDIR(mode) or inode not in (None, struct.unpack_from("<I", block, C_INUMBER)[0]):
            continue
        count = min(struct.unpack_from("<i", block, C_COUNT)[0], 512)
        data = sum(1 for b in block[C_ADDR:C_ADDR + count] if b)
        out.extend(range(i + 1, min(i + 1 + data, len(image.blocks))))
    return out


@dataclasses.dataclass(frozen=True)
class _Entry:
    block: int
    pos: int
    ino: int
    reclen: int
    dtype: int
    name: bytes


def _entries(image: Image, inode: int | None = None) -> list[_Entry]:
    """The well-formed entries (not '.' or '..') of the directory blocks."""
    out = []
    for b in _directory_blocks(image, inode):
        block = image.blocks[b]
        pos = 0
        while pos + 8 <= TP_BSIZE:
            ino, reclen, dtype, namlen = struct.unpack_from("<IHBB", block, pos)
            if reclen < 8 + namlen + 1 or reclen % 4 or pos + reclen > TP_BSIZE:
                break
            name = block[pos + 8:pos + 8 + namlen]
            if ino and name not in (b".", b"..") and b"\0" not in name and b"/" not in name:
                out.append(_Entry(b, pos, ino, reclen, dtype, name))
            pos += reclen
    return out


def _rename(image: Image, entry: _Entry, new: bytes) -> bytes:
    """Give *entry* the name *new* (cut to what its record holds); the name given."""
    new = new[:max(1, entry.reclen - 9)]
    block = bytearray(image.blocks[entry.block])
    struct.pack_into("<B", block, entry.pos + 7, len(new))
    block[entry.pos + 8:entry.pos + 8 + len(new)] = new
    block[entry.pos + 8 + len(new)] = 0
    image.blocks[entry.block] = bytes(block)
    return new


def _retarget(image: Image, header: int, target: str) -> None:
    """Point the symlink whose TS_INODE is block *header* at *target*."""
    body = target.encode() + b"\0"
    image.blocks[header] = _set(image.blocks[header], DI_SIZE, "Q", len(target))
    if header + 1 < len(image.blocks) and not is_header(image.blocks[header + 1]):
        image.blocks[header + 1] = body + image.blocks[header + 1][len(body):]


def _symlink_headers(image: Image) -> dict[int, int]:
    """``inode -> block index`` of the symlinks' TS_INODE headers."""
    return {struct.unpack_from("<I", image.blocks[i], C_INUMBER)[0]: i
            for i in image.headers_of(RecordType.TS_INODE)
            if stat.S_ISLNK(struct.unpack_from("<H", image.blocks[i], DI_MODE)[0])}


def mutate_hostile_name(rng: random.Random, image: Image) -> tuple[bytes, str]:
    """Names that lead out of the target: '..', '.', names with a '/';
    symlink targets pointing at the sentinel beside the target; and a
    symlink to the sentinel under the same name as a directory of the root
    (whoever creates the link first and then writes the directory's files
    through it writes into the sentinel)."""
    links = _symlink_headers(image)
    roll = rng.random()
    if links and roll < 0.2:
        i = rng.choice(sorted(links.values()))
        size = struct.unpack_from("<Q", image.blocks[i], DI_SIZE)[0]
        target = rng.choice(("../sentinel", "/tmp", "../../sentinel/hello.txt", "/"))
        _retarget(image, i, target)
        return image.encode(), f"symlink at header block {i} (size {size}) -> {target!r}"
    if roll < 0.5:
        root = _entries(image, 2)
        pairs = [(d, e) for d in root if d.dtype == 4 for e in root
                 if e.ino in links and e.reclen - 9 >= len(d.name)]
        if pairs:
            d, link = rng.choice(pairs)
            name = _rename(image, link, d.name)
            _retarget(image, links[link.ino], "../sentinel")
            return image.encode(), (f"root entry {link.name!r} (symlink, inode {link.ino}, header block "
                                    f"{links[link.ino]}) renamed {name!r} like directory inode {d.ino}, "
                                    f"and pointed at '../sentinel'")
    choices = _entries(image)
    if not choices:
        return image.encode(), "no directory entry to rename"
    e = rng.choice(choices)
    new = _rename(image, e, rng.choice((b"..", b".", b"../" + e.name, e.name[:1] + b"/../../x",
                                        ABSOLUTE_NAME, b"../sentinel")))
    return image.encode(), f"entry {e.name.decode(errors='replace')!r} at block {e.block}+{e.pos} renamed {new!r}"


def _type(block: bytes) -> int:
    return struct.unpack_from("<i", block, C_TYPE)[0]


RAW_MUTATIONS: dict[str, Callable[[random.Random, bytes], tuple[bytes, str]]] = {
    "byte_flip": mutate_byte_flip, "truncate": mutate_truncate}
BLOCK_MUTATIONS: dict[str, Callable[[random.Random, Image], tuple[bytes, str]]] = {
    "zero_record": mutate_zero_record, "swap_records": mutate_swap_records, "dup_record": mutate_dup_record,
    "huge_field": mutate_huge_field, "unknown_type": mutate_unknown_type, "damaged_map": mutate_damaged_map,
    "hostile_name": mutate_hostile_name}


def mutate(kind: str, rng: random.Random, raw: bytes) -> tuple[bytes, str]:
    """One mutant of image bytes *raw* of class *kind*, and how it was made."""
    if kind in RAW_MUTATIONS:
        return RAW_MUTATIONS[kind](rng, raw)
    return BLOCK_MUTATIONS[kind](rng, Image.parse(raw))


# -- running the tools -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    code: int | None     # None: killed after the timeout
    stderr: str

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr


def run_tool(argv: list[str], cwd: Path, tmp: Path, timeout: float, answers: bytes = b"") -> Run:
    """*argv* in *cwd* with TMPDIR *tmp* and *answers* on stdin (then EOF);
    killed (its whole process group) after *timeout* seconds."""
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(REPO))
    env.pop("TAPE", None)
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_limit_memory)
    try:
        _, err = child.communicate(answers, timeout=timeout)
        return Run(child.returncode, err.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        _, err = child.communicate()
        return Run(None, err.decode(errors="replace"))


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def snapshot(root: Path, skip: Iterable[Path]) -> dict[str, tuple]:
    """Every node under *root* but those under *skip*: type, mode, owner,
    size, mtime, and the bytes' hash or the link's target."""
    skipped = {str(p) for p in skip}
    out: dict[str, tuple] = {}
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in skipped]
        for name in dirs + files:
            path = os.path.join(top, name)
            if path in skipped:
                continue
            st = os.lstat(path)
            extra: object = None
            if stat.S_ISDIR(st.st_mode):   # its mtime and size move with the targets beside it
                out[path] = (st.st_mode, st.st_uid, st.st_gid)
                continue
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    extra = hashlib.sha1(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            out[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, extra)
    st = os.lstat(root)
    out[str(root)] = (st.st_mode, st.st_uid, st.st_gid)
    return out


def changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    out = [f"created {p}" for p in sorted(after.keys() - before.keys())]
    out += [f"removed {p}" for p in sorted(before.keys() - after.keys())]
    out += [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return out


def recovered(target: Path, source: dict[str, bytes]) -> int:
    """How many of *source*'s regular files are in *target* with the right bytes."""
    n = 0
    for rel, data in source.items():
        path = target / rel
        try:
            st = os.lstat(path)   # (a damaged size may make a file of terabytes of holes)
            if stat.S_ISREG(st.st_mode) and st.st_size == len(data) and path.read_bytes() == data:
                n += 1
        except OSError:
            pass
    return n


def _fresh(path: Path) -> Path:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        _make_writable(path)
        shutil.rmtree(path)
    path.mkdir()
    return path


def _make_writable(path: Path) -> None:
    """Undo modes (a restored 0555 directory) and immutable flags that would stop rmtree."""
    subprocess.run(["chattr", "-R", "-i", "-a", str(path)], capture_output=True)
    for top, dirs, _ in os.walk(path):
        for d in dirs:
            p = os.path.join(top, d)
            if not os.path.islink(p):
                os.chmod(p, 0o700)


class Sandbox:
    """``workdir/sandbox`` holding ``image.dump``, ``sentinel/`` (a copy of
    the source, the reference of ``-C``) and the targets; ``workdir/tmp``
    holds the tools' TMPDIRs and is not watched."""

    def __init__(self, workdir: Path, src: Path) -> None:
        self.workdir = workdir
        self.src = src
        self.root = workdir / "sandbox"
        self.image = self.root / "image.dump"
        self.sentinel = self.root / "sentinel"
        self.target = self.root / "target"
        self.real_target = self.root / "real-target"
        self.tmp = workdir / "tmp"
        self.keep = workdir / "kept"
        self.keep.mkdir(exist_ok=True)
        self.reset()

    def reset(self) -> None:
        """The sandbox as new: after an escape it may hold anything."""
        if self.root.exists():
            _make_writable(self.root)
            shutil.rmtree(self.root)
        self.root.mkdir()
        subprocess.run(["cp", "-a", str(self.src), str(self.sentinel)], check=True)
        self.target.mkdir()
        self.real_target.mkdir()

    def watched(self) -> dict[str, tuple]:
        seen = snapshot(self.workdir, [self.target, self.real_target, self.tmp, self.keep])
        for n in range(2, len(ABSOLUTE_NAME) + 1):   # what a cut absolute name could make
            path = ABSOLUTE_NAME[:n].decode()
            if path not in ("/tmp", "/tmp/") and os.path.lexists(path):
                seen[path] = ("exists",)
        return seen

    def tmpdir(self) -> Path:
        return _fresh(self.tmp)


def run(seed: int, count: int, workdir: Path, *, timeout: float = TIMEOUT,
        kinds: tuple[str, ...] = KINDS, real: bool = True, indexes: Iterable[int] | None = None,
        progress: Callable[[FuzzResult], None] | None = None) -> list[FuzzResult]:
    """*count* mutants from *seed* (the same seed, the same mutants), run in
    *workdir* (made if missing; the images are built once and reused).
    Mutant *i* is of class ``kinds[i % len(kinds)]``; each round of
    ``len(kinds)`` mutants moves every class on to the next of the four images; *real*: also run the real restore on each; *indexes*: run only
    those mutants of the *count* (to replay one)."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    src, images = build_images(workdir)
    source = regular_files(src)
    raws = {name: path.read_bytes() for name, path in images.items()}
    box = Sandbox(workdir, src)
    results = []
    for index in (range(count) if indexes is None else indexes):
        kind, name, mutant, how = make_mutant(seed, index, raws, kinds)
        result = run_mutant(box, seed, index, kind, name, mutant, how, source, timeout, real)
        results.append(result)
        if progress:
            progress(result)
    return results


def make_mutant(seed: int, index: int, raws: dict[str, bytes], kinds: tuple[str, ...] = KINDS
                ) -> tuple[str, str, bytes, str]:
    """Mutant *index* of the run with *seed*: ``(class, image name, bytes,
    how it was made)``.  *raws*: the images' bytes by name (:func:`build_images`)."""
    names = sorted(raws)
    kind = kinds[index % len(kinds)]
    name = names[(index % len(kinds) + index // len(kinds)) % len(names)]
    mutant, how = mutate(kind, random.Random(f"{seed}:{index}"), raws[name])
    return kind, name, mutant, how


def run_mutant(box: Sandbox, seed: int, index: int, kind: str, name: str, mutant: bytes, how: str,
               source: dict[str, bytes], timeout: float, real: bool) -> FuzzResult:
    box.image.write_bytes(mutant)
    before = box.watched()
    problems: list[str] = []
    details: list[str] = []
    image = str(box.image)
    recovered_py = 0
    for mode, argv in (("-t", [PYRESTORE, "-t", "-f", image]),
                       ("-x", [PYRESTORE, "-x", "-f", image]),
                       ("-C", [PYRESTORE, "-C", "-D", str(box.sentinel), "-f", image])):
        target = _fresh(box.target)
        done = run_tool(argv, target, box.tmpdir(), timeout)
        if done.code is None:
            problems.append(f"hang {mode}")
        elif done.traceback:
            problems.append(f"traceback {mode}")
            details.append(f"{mode}: " + " | ".join(done.stderr.strip().splitlines()[-3:]))
        if mode == "-x":
            recovered_py = recovered(target, source)
        after = box.watched()
        if after != before:
            problems.append(f"escape {mode}: " + "; ".join(changes(before, after)[:5]))
            box.reset()
            box.image.write_bytes(mutant)
            before = box.watched()
    recovered_real = -1
    if real:
        target = _fresh(box.real_target)
        # restore -x asks which volume to start with (stdin at EOF: it reads
        # none) and whether to set the owner and mode of '.'.
        done = run_tool([RESTORE, "-x", "-y", "-f", image], target, box.tmpdir(), timeout, b"1\nn\n")
        recovered_real = recovered(target, source)
        after = box.watched()
        if done.code is None:
            details.append("real restore hung")
        if after != before:
            details.append("real restore escaped: " + "; ".join(changes(before, after)[:3]))
            box.reset()
    outcome = "ok"
    for worst in ("escape", "hang", "traceback"):
        if any(p.startswith(worst) for p in problems):
            outcome = worst
            break
    kept = ""
    if outcome != "ok" or (real and recovered_py < recovered_real):
        kept_path = box.keep / f"s{seed}-{index:05d}-{kind}-{name}.dump"
        kept_path.write_bytes(mutant)
        kept = str(kept_path)
    return FuzzResult(index, kind, name, how, outcome, tuple(problems), " || ".join(details),
                      len(source), recovered_py, recovered_real, kept)


# -- the table ---------------------------------------------------------------------------------


COLUMNS = ("mutant class", "mutants", "tracebacks", "hangs", "escapes", "files recovered pyrestore",
           "files recovered real restore", "mutants where pyrestore recovered fewer")


def summary(results: list[FuzzResult]) -> list[tuple]:
    """One row per mutant class (and a total row), in :data:`COLUMNS` order."""
    by_kind: dict[str, list[FuzzResult]] = collections.defaultdict(list)
    for r in results:
        by_kind[r.kind].append(r)
    rows = []
    for kind in [k for k in KINDS if k in by_kind] + [k for k in by_kind if k not in KINDS]:
        rows.append(_row(kind, by_kind[kind]))
    rows.append(_row("total", results))
    return rows


def _row(kind: str, rs: list[FuzzResult]) -> tuple:
    has = lambda word: sum(1 for r in rs if any(p.startswith(word) for p in r.problems))  # noqa: E731
    return (kind, len(rs), has("traceback"), has("hang"), has("escape"),
            sum(r.recovered for r in rs), sum(max(r.recovered_real, 0) for r in rs),
            sum(1 for r in rs if r.recovered < r.recovered_real))


def format_table(rows: list[tuple], columns: tuple[str, ...] = COLUMNS) -> str:
    """A plain-text (Markdown) table."""
    cells = [list(map(str, columns))] + [list(map(str, r)) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    line = lambda c: "| " + " | ".join(x.ljust(w) for x, w in zip(c, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(c) for c in cells[1:]])
