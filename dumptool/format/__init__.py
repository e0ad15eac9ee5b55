"""The BSD/Linux dump image format: pure functions over bytes, no I/O.

Nothing outside this package knows an offset.  The facts come from
shared/docs/dump-format.md (oracle: Linux dump/restore 0.4b47).

Modules, one idea each:

* :mod:`.constants`: the format's constants under their standard names.
* :mod:`.header`: the 1 KiB header (``union u_spcl``), byte order, checksum.
* :mod:`.dinode`: the 128-byte inode copy, device numbers, times.
* :mod:`.bitmap`: the TS_CLRI / TS_BITS inode maps.
* :mod:`.directory`: BSD ``struct direct`` records in 512-byte chunks.
* :mod:`.acl`: POSIX ACLs, ext disk form and Linux xattr form.
* :mod:`.xattr`: the ext2 xattr payload of an EA header.
* :mod:`.stream`: the sequence of headers and data blocks a writer emits.
* :mod:`.walk`: walking a stream of blocks into segments, a header with its data blocks (the reader's counting rule).
* :mod:`.qfa`: the QFA file of ``dump -Q`` / ``restore -Q`` (inode to tape position).
"""

from .acl import (
    AclEntry,
    acl_ext_to_xattr,
    acl_xattr_to_ext,
    canonical_acl,
    pack_acl_xattr,
    pack_ext_acl,
    parse_acl_xattr,
    parse_ext_acl,
)
from .bitmap import build_inode_map, inode_in_map, map_blocks, parse_inode_map, restore_maxino
from .constants import *  # noqa: F401,F403  (the standard names, once)
from .constants import ByteOrder, DirentType, RecordType
from .dinode import Dinode, decode_dev, encode_dev, timeval_from_ns
from .directory import (
    DirEntry,
    Dirent,
    build_directory,
    directory_entries,
    dirent_reclen,
    dtype_from_mode,
    pack_dirent,
    parse_directory,
)
from .header import Header, checksum_ok, compute_checksum, header_byte_order, is_header, seal
from .qfa import (QFA_MAGIC, QFA_VERSION, QfaEntry, QfaMap, note_pass5, parse_qfa, qfa_indexes, qfa_line,
                  qfa_preamble)
from .stream import (
    Item,
    Slice,
    continuation_header,
    data_slice,
    end_records,
    file_slices,
    inode_records,
    map_records,
    number_blocks,
    other_dump,
    symlink_slices,
    volume_header,
    xattr_records,
)
from .xattr import (
    ext2_xattr_block_hash,
    ext2_xattr_hash,
    join_xattr_name,
    pack_xattr_block,
    split_xattr_name,
    unpack_xattr_payload,
)

# :mod:`.walk` (the reader's side) is imported on first use of one of its names: a dump
# never walks an image, and its start-up is most of what it costs to dump a small tree.
_WALK_NAMES = ("Damage", "Head", "Segment", "assemble_file", "image_byte_order", "iter_file_slices", "read_head",
               "skip_to_header", "walk_blocks", "walk_chunks", "walk_image")


def __getattr__(name: str) -> object:
    if name not in _WALK_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import walk

    value = getattr(walk, name)
    globals()[name] = value
    return value
