"""The names by which a snapfs mount shows other programs what it is.

A mounted volume lists its snapshots under :data:`SNAPDIR_NAME` in its root
and answers a few virtual extended attributes on every node.  snapfs serves
them (:mod:`snapfs.fuse_ops`, and :mod:`snapfs.client` exports them for its
callers); the dump engine reads them on whatever file system it dumps, to
tell a snapshot's tree and its files' stable numbers, and must work where
snapfs is not installed.  So the names live here, where both find them
without one importing the other.

The values are bytes, as the kernel hands them over; ``os.getxattr`` takes
them as they are.
"""

from __future__ import annotations

#: The directory in the root of a mount that holds one tree per snapshot.
SNAPDIR_NAME = b".snapshot"
#: A file's stable inode number, decimal ASCII: the same in the live tree and
#: in every snapshot (whose trees show other ``st_ino`` values).  The kernel
#: hides ``user.`` xattrs of symbolic links and devices: the ``trusted.`` one
#: answers root for every file type.
INO_XATTR = b"user.snapfs.ino"
TRUSTED_INO_XATTR = b"trusted.snapfs.ino"
#: On every node: the name of the snapshot it belongs to (empty in the live tree).
SNAPSHOT_XATTR = b"user.snapfs.snapshot"
#: On every node of a snapshot: when it was taken (the moment its data froze),
#: nanoseconds since the epoch in decimal; ENODATA in the live tree.
SNAPSHOT_CREATED_XATTR = b"user.snapfs.snapshot_created_ns"
#: On the root of a mount: the volume folder behind it.
VOLUME_XATTR = b"user.snapfs.volume"
