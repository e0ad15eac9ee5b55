"""The SQLite schema of a volume's metadata and its migrations.

Versioned tables (``inodes``, ``dirents``, ``xattrs``, ``blockmap``, ``streams``) carry
``birth`` and ``death`` epochs: a row is seen by snapshot S when
``birth <= S < death`` and by the live head when ``death = LIVE``.  Their
primary key ends in ``death`` so the live version of a key is one index probe;
the ``*_dead`` indexes on ``(death, birth)`` let snapshot deletion find exactly
the rows that died between two snapshots (the equivalent of a ZFS deadlist).
Since version 2 they are partial, holding dead rows only (:data:`DEAD`), so
creating and removing live rows does not pay for them; a query meant to use
one must carry the term :data:`DEAD` word for word.

A ``blockmap`` row is an extent (since version 7): blocks ``idx`` to
``idx + span - 1`` of file ``ino`` are data blocks ``block`` to ``block + span - 1``,
``1 <= span <=`` :data:`MAX_SPAN`; the rows one view sees of a file never overlap,
and a data block belongs to one row only.

``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`; :func:`migrate` brings an
older database up to it and refuses a newer one.
"""

from __future__ import annotations

import sqlite3

from .errors import NotAVolume

MAGIC = "snapfs-volume"
SCHEMA_VERSION = 7
#: The longest name (bytes) of a directory entry or a snapshot.
NAME_MAX = 255
#: ``death`` of a row the live head still sees (larger than any epoch).
LIVE = 1 << 62
#: The most blocks one ``blockmap`` row (an extent) maps: a sequential write makes a row per
#: 64 KiB (with 4 KiB blocks), and a look-up of the row that maps a block scans at most this
#: many index entries back.
MAX_SPAN = 16
#: The condition of the partial ``*_dead`` indexes (rows no longer live).
DEAD = f"death < {LIVE}"

_V1 = """
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    magic TEXT NOT NULL,
    name TEXT NOT NULL,
    block_size INTEGER NOT NULL,
    total_blocks INTEGER NOT NULL,
    max_inodes INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    epoch INTEGER NOT NULL,          -- the live head's current epoch
    next_ino INTEGER NOT NULL,       -- inode numbers are never reused
    next_cookie INTEGER NOT NULL,    -- readdir offsets
    high_water INTEGER NOT NULL,     -- blocks below it exist in the data file
    used_blocks INTEGER NOT NULL,    -- high_water minus the free list
    live_inodes INTEGER NOT NULL
);
CREATE TABLE inodes (
    ino INTEGER NOT NULL, death INTEGER NOT NULL, birth INTEGER NOT NULL,
    mode INTEGER NOT NULL, nlink INTEGER NOT NULL,
    uid INTEGER NOT NULL, gid INTEGER NOT NULL, rdev INTEGER NOT NULL,
    size INTEGER NOT NULL, nblocks INTEGER NOT NULL,
    atime_ns INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    target BLOB,
    PRIMARY KEY (ino, death)
) WITHOUT ROWID;
CREATE INDEX inodes_dead ON inodes (death, birth);
CREATE TABLE dirents (
    parent INTEGER NOT NULL, name BLOB NOT NULL, death INTEGER NOT NULL,
    birth INTEGER NOT NULL, ino INTEGER NOT NULL, cookie INTEGER NOT NULL,
    PRIMARY KEY (parent, name, death)
) WITHOUT ROWID;
CREATE INDEX dirents_cookie ON dirents (parent, death, cookie);
CREATE INDEX dirents_ino ON dirents (ino, death);
CREATE INDEX dirents_dead ON dirents (death, birth);
CREATE TABLE xattrs (
    ino INTEGER NOT NULL, name BLOB NOT NULL, death INTEGER NOT NULL,
    birth INTEGER NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (ino, name, death)
) WITHOUT ROWID;
CREATE INDEX xattrs_dead ON xattrs (death, birth);
CREATE TABLE blockmap (
    ino INTEGER NOT NULL, idx INTEGER NOT NULL, death INTEGER NOT NULL,
    birth INTEGER NOT NULL, block INTEGER NOT NULL,
    PRIMARY KEY (ino, idx, death)
) WITHOUT ROWID;
CREATE INDEX blockmap_dead ON blockmap (death, birth);
CREATE TABLE free_blocks (block INTEGER PRIMARY KEY);
CREATE TABLE snapshots (
    epoch INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL
);
CREATE TABLE holds (
    epoch INTEGER NOT NULL REFERENCES snapshots (epoch) ON DELETE CASCADE,
    holder TEXT NOT NULL,
    PRIMARY KEY (epoch, holder)
);
"""

#: Versioned tables and the columns of their keys (without ``death``).
VERSIONED = {
    "inodes": ("ino",),
    "dirents": ("parent", "name"),
    "xattrs": ("ino", "name"),
    "blockmap": ("ino", "idx"),
    "streams": ("ino", "name", "idx"),  # since version 4
}

_V2 = "".join(
    f"DROP INDEX {t}_dead; CREATE INDEX {t}_dead ON {t} (death, birth) WHERE {DEAD};\n"
    for t in ("inodes", "dirents", "xattrs", "blockmap"))

#: Version 3 (issue 12, the filer volume): the volume's identity and access type
#: (``volume_props``: uuid, generation, type, security_style, next_qtree_id; not
#: versioned, a volume has one identity) and the client I/O restrictions
#: (``restrictions``: live state, not history), and the generation and type each
#: snapshot was taken with (``snapshot_identity``).  Qtrees and junctions are stored
#: as versioned ``trusted.snapfs.*`` xattrs of their inodes, so snapshots keep them.
_V3 = """
CREATE TABLE IF NOT EXISTS volume_props (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO volume_props (key, value) SELECT 'uuid', substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4'
    || substr(h, 14, 3) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(h, 18, 3) || '-'
    || substr(h, 21, 12) FROM (SELECT lower(hex(randomblob(16))) AS h);
INSERT OR IGNORE INTO volume_props (key, value) VALUES ('generation', '1'), ('type', 'rw'),
    ('security_style', 'unix'), ('next_qtree_id', '1');
CREATE TABLE IF NOT EXISTS restrictions (ino INTEGER PRIMARY KEY, owner TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot_identity (
    epoch INTEGER PRIMARY KEY REFERENCES snapshots (epoch) ON DELETE CASCADE,
    generation INTEGER NOT NULL, type TEXT NOT NULL
);
"""

#: Version 4 (issue 12, Windows metadata): a directory entry's DOS 8.3 name when it is not the
#: name itself in upper case (see :mod:`snapfs.shortnames`), unique among the live entries of
#: its directory, versioned with the entry, so snapshots keep it; and the named streams too
#: large for an xattr, in chunks, each chunk a versioned row (see :mod:`snapfs.streams`).
_V4 = f"""
ALTER TABLE dirents ADD COLUMN dosname BLOB;
CREATE UNIQUE INDEX dirents_dosname ON dirents (parent, dosname) WHERE dosname IS NOT NULL AND death = {LIVE};
CREATE TABLE streams (
    ino INTEGER NOT NULL, name BLOB NOT NULL, idx INTEGER NOT NULL, death INTEGER NOT NULL,
    birth INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (ino, name, idx, death)
) WITHOUT ROWID;
CREATE INDEX streams_dead ON streams (death, birth) WHERE {DEAD};
"""

#: Version 5 (issue 12, LUNs and locks): persistent locks (``locks``: live state, not history;
#: see :mod:`snapfs.locks`).  LUNs need no table: their records are versioned
#: ``trusted.snapfs.lun`` xattrs (see :mod:`snapfs.luns`).
_V5 = """
CREATE TABLE IF NOT EXISTS locks (
    id INTEGER PRIMARY KEY, ino INTEGER NOT NULL, owner TEXT NOT NULL, type TEXT NOT NULL,
    start INTEGER NOT NULL, length INTEGER NOT NULL, share TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS locks_ino ON locks (ino);
"""

#: Version 6 (issue 10, space like a filer's): the room of a file's extended attributes is the
#: volume's own, no longer the block size (the default block became 4 KiB, while a default
#: volume keeps 64 KiB for them: a Windows ACL of tens of KB fits); an older volume keeps
#: what it had, its block size up to 64 KiB.
#: (Made by :func:`_xattr_room_of_old_volumes`.)
_V6 = ""

#: Version 7 (issue 10, sequential writes with 4 KiB blocks): a ``blockmap`` row maps a run of
#: up to :data:`MAX_SPAN` blocks that follow each other in the file and in the data file
#: (``span`` of them), not one: a sequential write makes a sixteenth of the rows.  Older rows
#: map one block each, which is what ``span``'s default says.  (Made by :func:`_extents`.)
_V7 = ""

_MIGRATIONS = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6, 7: _V7}


def migrate(db: sqlite3.Connection) -> None:
    """Bring ``db`` to :data:`SCHEMA_VERSION`; refuse a database from a newer snapfs."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise NotAVolume(
            f"volume schema version {version} is newer than this snapfs ({SCHEMA_VERSION}); upgrade snapfs"
        )
    for v in range(version + 1, SCHEMA_VERSION + 1):
        db.executescript("BEGIN;" + _MIGRATIONS[v])
        try:
            if v == 4:
                _short_names_of_old_entries(db)
            if v == 6:
                _xattr_room_of_old_volumes(db)
            if v == 7:
                _extents(db)
            db.execute(f"PRAGMA user_version = {v}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _short_names_of_old_entries(db: sqlite3.Connection) -> None:
    """Version 4: the live entries made before it get their DOS 8.3 names, in cookie order
    (snapshots show older entries' names in upper case, as they had none)."""
    from .shortnames import assign  # shortnames needs this module
    from .windows.dosname import is_short

    for parent, name in db.execute(f"SELECT parent, name FROM dirents WHERE death = {LIVE} ORDER BY cookie").fetchall():
        if not is_short(name):  # an 8.3 name is its own short name
            dos = assign(db, parent, name)
            db.execute(f"UPDATE dirents SET dosname = ? WHERE parent = ? AND name = ? AND death = {LIVE}",
                       (dos, parent, name))


def _xattr_room_of_old_volumes(db: sqlite3.Connection) -> None:
    """Version 6: ``meta.xattr_room``, what an older volume had: its block size, up to 64 KiB."""
    if not any(r[1] == "xattr_room" for r in db.execute("PRAGMA table_info(meta)")):
        db.execute("ALTER TABLE meta ADD COLUMN xattr_room INTEGER NOT NULL DEFAULT 0")
        db.execute("UPDATE meta SET xattr_room = min(block_size, 65536)")


def _extents(db: sqlite3.Connection) -> None:
    """Version 7: ``blockmap.span``; the rows an older volume has map one block each."""
    if not any(r[1] == "span" for r in db.execute("PRAGMA table_info(blockmap)")):
        db.execute("ALTER TABLE blockmap ADD COLUMN span INTEGER NOT NULL DEFAULT 1")
