"""The extended-attribute payload of an EA header (section 7).

After an inode's data, dump writes a ``TS_INODE`` header flagged
``DR_EXTATTRIBUTES`` (see :func:`dumptool.format.stream.xattr_records`)
whose data is an ext2 xattr area: either the **block form** (magic
0xEA020000, 32-byte header, value offsets from the payload start) or the
**in-inode form** (magic 0xEA020001, entries from offset 4, value offsets
from offset 4).  Writers here produce the block form; readers take both.

The payload is always little-endian (ext2's disk order), whatever the
image's byte order: Linux restore swaps it from little-endian on big-endian
hosts and never on little-endian ones.

Entries are sorted as ext2 sorts a block (name index, name length, name)
and carry ext2's hashes, although restore ignores hashes.  ACL values are
turned into the ext disk form on the way in and back into the Linux xattr
form on the way out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from ..errors import FormatError, FormatLimitError
from .acl import acl_ext_to_xattr, acl_xattr_to_ext
from .constants import (
    EXT2_XATTR_ENTRY_SIZE,
    EXT2_XATTR_HEADER_SIZE,
    EXT2_XATTR_IBODY_HEADER_SIZE,
    EXT2_XATTR_INDEX_LUSTRE,
    EXT2_XATTR_INDEX_POSIX_ACL_ACCESS,
    EXT2_XATTR_INDEX_POSIX_ACL_DEFAULT,
    EXT2_XATTR_INDEX_SECURITY,
    EXT2_XATTR_INDEX_TRUSTED,
    EXT2_XATTR_INDEX_USER,
    EXT2_XATTR_MAGIC,
    EXT2_XATTR_MAGIC2,
    EXT4_XATTR_INDEX_SYSTEM,
    TP_BSIZE,
    XATTR_MAXSIZE,
    XATTR_NAME_POSIX_ACL_ACCESS,
    XATTR_NAME_POSIX_ACL_DEFAULT,
)

XattrItems = Mapping[bytes | str, bytes] | Iterable[tuple[bytes | str, bytes]]

_MASK32 = 0xFFFFFFFF
_ACL_INDEXES = (EXT2_XATTR_INDEX_POSIX_ACL_ACCESS, EXT2_XATTR_INDEX_POSIX_ACL_DEFAULT)
# name index -> prefix; whole-name indexes (ACLs) have an empty suffix
_PREFIXES = {
    EXT2_XATTR_INDEX_USER: b"user.",
    EXT2_XATTR_INDEX_POSIX_ACL_ACCESS: XATTR_NAME_POSIX_ACL_ACCESS,
    EXT2_XATTR_INDEX_POSIX_ACL_DEFAULT: XATTR_NAME_POSIX_ACL_DEFAULT,
    EXT2_XATTR_INDEX_TRUSTED: b"trusted.",
    EXT2_XATTR_INDEX_LUSTRE: b"lustre.",
    EXT2_XATTR_INDEX_SECURITY: b"security.",
    EXT4_XATTR_INDEX_SYSTEM: b"system.",
}
# what a writer may use: restore 0.4b47 knows 1..6 ("Unknown EA index" otherwise)
_WRITABLE = (
    (XATTR_NAME_POSIX_ACL_ACCESS, EXT2_XATTR_INDEX_POSIX_ACL_ACCESS, True),
    (XATTR_NAME_POSIX_ACL_DEFAULT, EXT2_XATTR_INDEX_POSIX_ACL_DEFAULT, True),
    (b"user.", EXT2_XATTR_INDEX_USER, False),
    (b"trusted.", EXT2_XATTR_INDEX_TRUSTED, False),
    (b"security.", EXT2_XATTR_INDEX_SECURITY, False),
)


def _name_bytes(name: bytes | str) -> bytes:
    return name.encode("utf-8", "surrogateescape") if isinstance(name, str) else bytes(name)


def split_xattr_name(name: bytes | str) -> tuple[int, bytes]:
    """``(e_name_index, suffix)`` for a full xattr name, as a writer stores it.

    Raises :class:`FormatLimitError` for names restore cannot apply (other
    ``system.`` names, unknown namespaces, suffixes over 255 bytes).
    """
    raw = _name_bytes(name)
    for prefix, index, whole in _WRITABLE:
        if whole and raw == prefix:
            return index, b""
        if not whole and raw.startswith(prefix) and len(raw) > len(prefix):
            suffix = raw[len(prefix):]
            if len(suffix) > 255:
                raise FormatLimitError(f"xattr name {raw[:40]!r}... is too long for a dump image")
            return index, suffix
    raise FormatLimitError(f"xattr {raw!r} cannot be stored in a dump image (restore has no index for it)")


def join_xattr_name(index: int, suffix: bytes) -> bytes:
    """The full xattr name for an entry's index and suffix."""
    try:
        prefix = _PREFIXES[index]
    except KeyError:
        raise FormatError(f"extended attribute with unknown name index {index}") from None
    return prefix + suffix


def ext2_xattr_hash(suffix: bytes, value: bytes) -> int:
    """ext2's ``e_hash`` of an entry (name suffix, then value words). restore ignores it."""
    h = 0
    for c in suffix:
        c = c - 256 if c >= 128 else c  # the kernel hashes signed chars
        h = ((h << 5) ^ (h >> 27) ^ c) & _MASK32
    if value:
        padded = value + bytes(-len(value) % 4)
        for (word,) in struct.iter_unpack("<I", padded):
            h = ((h << 16) ^ (h >> 16) ^ word) & _MASK32
    return h


def ext2_xattr_block_hash(entry_hashes: Iterable[int]) -> int:
    """ext2's ``h_hash`` of a block: 0 if any entry hash is 0."""
    h = 0
    for e in entry_hashes:
        if not e:
            return 0
        h = ((h << 16) ^ (h >> 16) ^ e) & _MASK32
    return h


def _items(xattrs: XattrItems) -> list[tuple[bytes, bytes]]:
    pairs = xattrs.items() if isinstance(xattrs, Mapping) else xattrs
    return [(_name_bytes(n), bytes(v)) for n, v in pairs]


def pack_xattr_block(xattrs: XattrItems) -> bytes:
    """The block-form EA payload for an inode's xattrs (names -> values).

    Values are what ``os.getxattr`` returns: ACL xattrs in the Linux form are
    converted to the ext disk form.  The result is 1 to 4 KiB (a multiple of
    TP_BSIZE); it is the EA header's ``di_size``.  Raises
    :class:`FormatLimitError` when a name cannot be stored or the whole does
    not fit restore's 4096-byte limit (restore would skip it all), and
    :class:`FormatError` for an ACL value that is not a valid ACL.

    Write exactly one EA header per inode: restore 0.4b47 keeps only the last
    EA record of a directory (section 15).
    """
    entries = []
    seen: set[tuple[int, bytes]] = set()
    for name, value in _items(xattrs):
        index, suffix = split_xattr_name(name)
        if (index, suffix) in seen:
            raise ValueError(f"xattr {name!r} given twice")
        seen.add((index, suffix))
        if index in _ACL_INDEXES:
            value = acl_xattr_to_ext(value)
        entries.append((index, suffix, value))
    entries.sort(key=lambda e: (e[0], len(e[1]), e[1]))

    table_size = EXT2_XATTR_HEADER_SIZE + 4 + sum(
        (EXT2_XATTR_ENTRY_SIZE + len(s) + 3) & ~3 for _, s, _ in entries
    )
    values_size = sum((len(v) + 3) & ~3 for _, _, v in entries)
    needed = table_size + values_size
    if needed > XATTR_MAXSIZE:
        raise FormatLimitError(
            f"extended attributes need {needed} bytes; a dump image holds at most "
            f"{XATTR_MAXSIZE} per file"
        )
    size = -(-needed // TP_BSIZE) * TP_BSIZE
    out = bytearray(size)
    pos = EXT2_XATTR_HEADER_SIZE
    value_end = size
    hashes = []
    for index, suffix, value in entries:
        if value:
            value_end -= (len(value) + 3) & ~3
            out[value_end:value_end + len(value)] = value
            offs = value_end
        else:
            offs = 0
        h = ext2_xattr_hash(suffix, value)
        hashes.append(h)
        struct.pack_into("<BBHIII", out, pos, len(suffix), index, offs, 0, len(value), h)
        out[pos + EXT2_XATTR_ENTRY_SIZE:pos + EXT2_XATTR_ENTRY_SIZE + len(suffix)] = suffix
        pos += (EXT2_XATTR_ENTRY_SIZE + len(suffix) + 3) & ~3
    struct.pack_into("<IIII", out, 0, EXT2_XATTR_MAGIC, 1, 1, ext2_xattr_block_hash(hashes))
    return bytes(out)


def unpack_xattr_payload(payload: bytes) -> list[tuple[bytes, bytes]]:
    """``[(name, value), ...]`` of an EA payload, block or in-inode form.

    ACL values come back in the Linux xattr form, ready for ``os.setxattr``.
    Index 7 (ext4 ``system.``, e.g. ``system.data``) is read as such, though
    real restore rejects it.  Raises :class:`FormatError` for a bad magic, an
    unknown index, a bad ACL or anything running past the payload.
    """
    if len(payload) < 4:
        raise FormatError("extended-attribute payload is too short")
    (magic,) = struct.unpack_from("<I", payload, 0)
    if magic == EXT2_XATTR_MAGIC:
        first, value_base = EXT2_XATTR_HEADER_SIZE, 0
    elif magic == EXT2_XATTR_MAGIC2:
        first = value_base = EXT2_XATTR_IBODY_HEADER_SIZE
    else:
        raise FormatError(f"extended-attribute payload has bad magic {magic:#010x}")
    end = len(payload)
    out = []
    pos = first
    while True:
        if pos + 4 > end:
            raise FormatError("extended-attribute entries run past the payload")
        if struct.unpack_from("<I", payload, pos)[0] == 0:
            return out
        if pos + EXT2_XATTR_ENTRY_SIZE > end:
            raise FormatError("extended-attribute entry runs past the payload")
        name_len, index, offs, _block, size, _hash = struct.unpack_from("<BBHIII", payload, pos)
        suffix = payload[pos + EXT2_XATTR_ENTRY_SIZE:pos + EXT2_XATTR_ENTRY_SIZE + name_len]
        start = value_base + offs
        if pos + EXT2_XATTR_ENTRY_SIZE + name_len > end or start + size > end:
            raise FormatError("extended-attribute entry or value runs past the payload")
        value = payload[start:start + size]
        name = join_xattr_name(index, suffix)
        if index in _ACL_INDEXES:
            value = acl_ext_to_xattr(value)
        out.append((name, value))
        pos += (EXT2_XATTR_ENTRY_SIZE + name_len + 3) & ~3
