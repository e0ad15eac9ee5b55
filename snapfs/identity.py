"""A volume's identity and access type: its uuid, generation, type (rw/ro) and security style.

:class:`IdentityOps` is one of the parts :class:`snapfs.volume.Volume` is made
of.  The values live in the ``volume_props`` table (schema version 3): not
versioned, since a volume has one identity whatever its snapshots.

- ``uuid``: made once, when the volume is made (or migrated to version 3).
- ``type``: ``rw``, or ``ro`` for a mirror destination: the mount answers
  EROFS to every change of the live tree (the Volume API itself still
  writes: it is what a mirror transfer would use).
- ``generation``: starts at 1 and goes up by one at every change of type and
  every (simulated) :meth:`IdentityOps.volume_move`.  The dump engine keeps
  it with a baseline and requires a new baseline when it changed.
- ``security_style``: unix, ntfs or mixed; the default of new qtrees.
- ``availability``: ``online``; ``offline`` (``snapfs volume offline``: the
  mount refuses I/O, and dump and restore sessions are refused); a simulated
  failover event in progress (``takeover``, ``giveback``, ``relocate``,
  ``switchover``, ``switchback``: briefly offline the same way); or
  ``move-cutover`` (a volume move past its cutover: I/O goes on, new
  sessions are refused until the move completes).  See :mod:`snapfs.vetoes`.
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass

from .errors import err
from .store import StoreCalls

VOLUME_TYPES = ("rw", "ro")
#: availability -> why a new dump or restore session is refused then (None: it is not)
AVAILABILITY: dict[str, str | None] = {
    "online": None,
    "offline": "is offline ('snapfs volume online' brings it back)",
    "takeover": "is being taken over by its partner (storage failover)",
    "giveback": "is being given back by its partner (storage failover)",
    "relocate": "is in an aggregate relocation",
    "switchover": "is in a MetroCluster switchover",
    "switchback": "is in a MetroCluster switchback",
    "move-cutover": "is past the cutover of a volume move",
}
#: the availabilities in which the mount refuses I/O (all but online and a move's cutover)
IO_REFUSED = frozenset(AVAILABILITY) - {"online", "move-cutover"}
SECURITY_STYLES = ("unix", "ntfs", "mixed")


@dataclass(frozen=True, slots=True)
class VolumeIdentity:
    """What :meth:`IdentityOps.volume_identity` answers (and snapfs.reader reads)."""

    uuid: str
    generation: int
    type: str
    security_style: str
    aggregate: str


def read_props(db: sqlite3.Connection) -> dict[str, str]:
    """The ``volume_props`` table as a dict (for the Volume, fsck and the reader)."""
    return dict(db.execute("SELECT key, value FROM volume_props"))


def identity_of(props: dict[str, str]) -> VolumeIdentity:
    return VolumeIdentity(props.get("uuid", ""), int(props.get("generation", "1")), props.get("type", "rw"),
                          props.get("security_style", "unix"), props.get("aggregate", "aggr0"))


def snapshot_identity_of(db: sqlite3.Connection, snap: int, props: dict[str, str]) -> VolumeIdentity:
    """The volume's identity as snapshot ``snap`` was taken with it: its generation and type
    then (a snapshot from before schema 3 has none recorded: the current ones)."""
    now = identity_of(props)
    r = db.execute("SELECT generation, type FROM snapshot_identity WHERE epoch = ?", (snap,)).fetchone()
    if r is None:
        return now
    return VolumeIdentity(now.uuid, r[0], r[1], now.security_style, now.aggregate)


def check_style(style: str) -> str:
    if style not in SECURITY_STYLES:
        raise err(errno.EINVAL, f"unknown security style {style!r} (use unix, ntfs or mixed)")
    return style


class IdentityOps(StoreCalls):
    """volume_identity, volume_modify, volume_move (a Volume part)."""

    #: True for a volume of type ro: the FUSE adapter answers EROFS to every change
    read_only: bool = False

    def _load_identity(self) -> None:
        self._props = read_props(self._db)
        self.read_only = self._props.get("type") == "ro"

    def _put_props(self, **values: str) -> None:
        with self._txn():
            for k, v in values.items():
                self._db.execute("INSERT OR REPLACE INTO volume_props (key, value) VALUES (?, ?)", (k, v))
        self._props.update(values)
        self.read_only = self._props.get("type") == "ro"

    def check_writable(self) -> None:
        """EROFS on a volume of type ro: the filer's commands change no qtree or junction
        of a mirror destination (its source's are mirrored to it)."""
        if self.read_only:
            raise err(errno.EROFS, f"volume {self.meta.name} is read-only (type ro, a mirror destination);"
                      " 'snapfs volume modify --type rw' first")

    def prop(self, key: str, default: str = "") -> str:
        """One value of ``volume_props`` (``next_qtree_id`` and the like)."""
        return self._props.get(key, default)

    def volume_identity(self) -> VolumeIdentity:
        return identity_of(self._props)

    def _record_identity(self, snap: int) -> None:
        """Inside snapshot_create's transaction: the generation and type snapshot ``snap`` is taken with."""
        i = self.volume_identity()
        self._db.execute("INSERT OR REPLACE INTO snapshot_identity (epoch, generation, type) VALUES (?, ?, ?)",
                         (snap, i.generation, i.type))

    def snapshot_identity(self, snap: int) -> VolumeIdentity:
        """The identity as it was when snapshot ``snap`` (an id) was taken."""
        return snapshot_identity_of(self._db, snap, self._props)

    def volume_modify(self, type: str | None = None, security_style: str | None = None) -> VolumeIdentity:
        """Change the access type (bumping the generation when it changes) and/or the
        volume's security style (the default of qtrees made afterwards)."""
        values: dict[str, str] = {}
        if type is not None:
            if type not in VOLUME_TYPES:
                raise err(errno.EINVAL, f"unknown volume type {type!r} (use rw or ro)")
            if type != self._props.get("type"):
                values["type"] = type
                values["generation"] = str(self.volume_identity().generation + 1)
        if security_style is not None:
            values["security_style"] = check_style(security_style)
        if values:
            self._put_props(**values)
        return self.volume_identity()

    def volume_move(self, aggregate: str, keep_identity: bool = False) -> VolumeIdentity:
        """The identity of a volume moved to ``aggregate`` (a name, or the folder
        that holds the moved volume's folder, see :mod:`snapfs.moving`): the
        aggregate changes and the generation goes up, as the dump engine sees a
        moved volume; ``keep_identity`` (the CAB case) keeps the generation."""
        if not aggregate or "\n" in aggregate:
            raise err(errno.EINVAL, f"bad aggregate name {aggregate!r}")
        generation = self.volume_identity().generation + (0 if keep_identity else 1)
        self._put_props(aggregate=aggregate, generation=str(generation))
        return self.volume_identity()

    def volume_move_undo(self, was: VolumeIdentity) -> None:
        """Put back the aggregate and generation of ``was`` (a move whose transfer failed)."""
        self._put_props(aggregate=was.aggregate, generation=str(was.generation))

    @property
    def availability(self) -> str:
        return self._props.get("availability", "online")

    @property
    def io_refused(self) -> bool:
        """Whether the mount refuses I/O now (offline, or in a failover event)."""
        return self.availability in IO_REFUSED

    def set_availability(self, state: str) -> None:
        if state not in AVAILABILITY:
            raise err(errno.EINVAL, f"unknown availability {state!r}")
        self._put_props(availability=state)

    def check_sessions_allowed(self) -> None:
        """EBUSY when a new dump or restore session on this volume must be refused now."""
        why = AVAILABILITY.get(self.availability)
        if why is not None:
            raise err(errno.EBUSY, f"volume {self.meta.name} {why}: no dump or restore session may start on it now")
