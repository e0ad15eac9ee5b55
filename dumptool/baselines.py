"""What a dump of a snapfs volume keeps beside dumpdates, and the checks an incremental's base must pass.

dumpdates stays Linux dump's file (a line per path and level).  Beside it,
``<dumpdates>.filer`` (JSON) keeps, for each (path, level) recorded by a dump
of a snapfs path, the same date as the dumpdates line and:

* the volume's identity as the dump's snapshot was taken: uuid, generation,
  access type (rw/ro) and aggregate;
* the files and LUNs the dump left out because they were under client I/O
  restriction (snapfs inode number -> path): every dump based on that one
  takes them, changed or not, once the restriction is lifted.

An incremental (level > 0) based on a recorded dump is refused, with one line
naming the reason and "run a level 0", when since that base the volume's
identity (uuid) or access type changed, it was moved (another aggregate), or
its generation went up (snapfs bumps it at each change of type and each move;
``fsck`` too when it repairs the identity).  A move that keeps the volume's
identity (``snapfs volume move --keep-identity``: the generation unchanged) is
accepted only for a caller that speaks NDMP's Cluster Aware Backup extension
(``cab``), as ONTAP accepts it there; a move that bumped the generation needs
a new baseline, CAB or not.  A base with no entry here
(made by a dump of a live tree, or before this file existed) cannot be
checked: refused too, since the files its dump skipped are not known.

The entry is written before the dumpdates line (a dumpdates line whose entry
is missing or carries another date is taken as unchecked, never as clean).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from pathlib import Path

from tapelib.durable import replace_file

from .errors import DumpDatesError, DumpError

_FORMAT = "snapdump-filer-baselines"
_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Identity:
    """A volume's identity as a dump saw it (snapfs's VolumeIdentity, less the security style)."""

    uuid: str
    generation: int
    type: str
    aggregate: str

    @classmethod
    def of(cls, identity: object) -> "Identity":
        """From a :class:`snapfs.identity.VolumeIdentity` (or anything with the same fields)."""
        return cls(str(identity.uuid), int(identity.generation), str(identity.type), str(identity.aggregate))


@dataclasses.dataclass(frozen=True)
class Baseline:
    """One recorded dump of a snapfs path: its identity and what it skipped (ino -> path)."""

    path: str
    level: int
    date: int
    identity: Identity
    skipped: dict[int, str] = dataclasses.field(default_factory=dict)


class Baselines:
    """The ``<dumpdates>.filer`` file of dumpdates file ``dumpdates``."""

    def __init__(self, dumpdates: str | os.PathLike[str]) -> None:
        self.file = Path(f"{os.fspath(dumpdates)}.filer")

    def get(self, path: str, level: int, date: int) -> Baseline | None:
        """The entry of the dump of ``path`` at ``level`` on ``date``, or None (none, or another date)."""
        entry = self._load().get(f"{level} {path}")
        if entry is None or entry.get("date") != date:
            return None
        try:
            ident = Identity(str(entry["uuid"]), int(entry["generation"]), str(entry["type"]),
                             str(entry["aggregate"]))
            skipped = {int(ino): str(p) for ino, p in entry.get("skipped", {}).items()}
        except (KeyError, TypeError, ValueError):
            raise DumpDatesError(f"{self.file}: the entry of level {level} of {path} is damaged: "
                                 "fix or remove it, and run a level 0") from None
        return Baseline(path, level, date, ident, skipped)

    def put(self, baseline: Baseline) -> None:
        """Record ``baseline``, replacing the entry of the same path and level."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        lock = Path(f"{self.file}.lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DumpDatesError(f"cannot open {lock}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            entries = self._load()
            entries[f"{baseline.level} {baseline.path}"] = {
                "date": baseline.date, **dataclasses.asdict(baseline.identity),
                "skipped": {str(ino): p for ino, p in sorted(baseline.skipped.items())}}
            body = json.dumps({"format": _FORMAT, "version": _VERSION, "dumps": entries}, indent=1, sort_keys=True)
            try:
                replace_file(self.file, body.encode() + b"\n", 0o644)
            except OSError as exc:
                raise DumpDatesError(f"cannot rewrite {self.file}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def _load(self) -> dict[str, dict]:
        try:
            text = self.file.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise DumpDatesError(f"cannot read {self.file}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("dumps"), dict):
            raise DumpDatesError(f"{self.file} is damaged: remove it and run a level 0")
        return data["dumps"]


def check_base(path: str, level: int, base: Baseline | None, base_level: int, now: Identity, *,
               cab: bool = False) -> None:
    """Refuse (DumpError, one line ending in "run a level 0") a level-``level`` dump of ``path``
    whose base (level ``base_level``, entry ``base``) the volume's identity ``now`` no longer matches."""
    def refuse(why: str) -> None:
        raise DumpError(f"cannot dump {path} at level {level}: {why} since its level {base_level} base: "
                        "run a level 0")

    if base is None:
        refuse("no volume identity is recorded with the base (dumped live, or before it was kept)")
    was = base.identity
    if was.uuid != now.uuid:
        refuse(f"the volume's identity changed (uuid {was.uuid}, now {now.uuid})")
    if was.type != now.type:
        refuse(f"the volume's access type changed ({was.type}, now {now.type})")
    moved = was.aggregate != now.aggregate
    if moved and not cab:
        refuse(f"the volume was moved ({was.aggregate}, now {now.aggregate})")
    if was.generation != now.generation:
        refuse(f"the volume's generation changed ({was.generation}, now {now.generation})")
