"""A dump of a snapfs volume: where a path lies, and the backup snapshot's life.

As ONTAP's dump does, a dump of a path on a snapfs mount (the volume, a qtree
or any directory under it) reads a snapshot, never the live tree:

1. :func:`locate` finds the mount a path lies on (the root of a live mount
   answers the ``user.snapfs.volume`` xattr) and the path under it; a path in
   ``MOUNT/.snapshot/NAME/`` names that snapshot.
2. :class:`BackupSnapshot` creates ``snapshot_for_backup.N`` (N from the
   mount's counter: two dumps at once get two names), or takes the snapshot
   named by ``--snapshot NAME`` and creates none; holds it for the dump (the
   holder is ``pydump-PID``), opens a :class:`~dumptool.snaptree.SnapshotTree`
   on it, and when the dump ends (done, failed, interrupted by SIGINT, SIGTERM
   or SIGHUP) closes the tree, releases the hold and deletes the snapshot it
   created.  A snapshot it did not create is never deleted.
3. The dump's date is the snapshot's creation time.

snapfs is imported only here and in :mod:`dumptool.snaptree`, and only for a
path on a snapfs mount: without snapfs installed every path is a live tree.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from snapdump.numerals import is_decimal
from snapdump.processes import process_alive
from snapdump.snapfs_names import SNAPDIR_NAME, VOLUME_XATTR

from .baselines import Baseline, Baselines, Identity, check_base
from .dumpdates import DumpDates
from .errors import DumpError

if TYPE_CHECKING:
    from snapfs.client import Client

    from .dump import DumpOptions

#: The directory a snapfs mount shows its snapshots in.
SNAPSHOT_DIR = os.fsdecode(SNAPDIR_NAME)


@dataclass(frozen=True)
class FilerPath:
    """A path on a snapfs mount: the mount point, the live path under it ("" for the
    whole volume) and the snapshot it lies in when given as ``MOUNT/.snapshot/NAME/...``."""

    mount: str
    rel: str
    snapshot: str | None = None

    @property
    def live(self) -> str:
        """The live path: what dumpdates, the inode map and the image name."""
        return os.path.join(self.mount, self.rel) if self.rel else self.mount


def locate(path: str) -> FilerPath | None:
    """The snapfs mount ``path`` lies on, or None (not on snapfs, or snapfs not installed)."""
    real = os.path.realpath(path)
    top = real
    while True:
        try:
            os.getxattr(top, VOLUME_XATTR)
        except OSError:
            parent = os.path.dirname(top)
            if parent == top:
                return None
            top = parent
            continue
        break
    try:  # only now: a dump of a live tree does not load snapfs
        import snapfs  # noqa: F401  (its mounts are read through snapfs.reader)
    except ImportError:
        return None
    rel = os.path.relpath(real, top)
    parts = [] if rel == os.curdir else rel.split(os.sep)
    if parts and parts[0] == SNAPSHOT_DIR:
        if len(parts) < 2:
            raise DumpError(f"cannot dump {real}: name one snapshot in it ({real}/NAME) or use --snapshot NAME")
        return FilerPath(top, os.sep.join(parts[2:]), parts[1])
    return FilerPath(top, os.sep.join(parts))


#: The names of the snapshots a dump makes for itself.
BACKUP_PREFIX = "snapshot_for_backup."
#: How a dump names itself as a snapshot's holder: this prefix and its process id.
HOLDER_PREFIX = "pydump-"


def dead_dump(holder: str) -> bool:
    """Whether ``holder`` names a pydump process (``pydump-PID``) that no longer runs."""
    pid = holder[len(HOLDER_PREFIX):]
    if not holder.startswith(HOLDER_PREFIX) or not is_decimal(pid):
        return False
    return not process_alive(int(pid))


def _block_signals() -> set | None:
    """Hold SIGINT, SIGTERM and SIGHUP back (the main thread's); the mask before, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop as on SIGINT, so the snapshot is released and deleted."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated(f"signal {signum}")


class BackupSnapshot:
    """The snapshot a dump of ``where`` reads, as a context manager giving itself:
    :attr:`tree` (a SnapshotTree of the path), :attr:`name`, :attr:`date` (creation
    time, whole seconds), :attr:`created` (whether this dump made it) and
    :attr:`client`, its connection to the volume (for more requests of the same dump).

    ``snapshot``: dump that existing snapshot (held for the dump, not deleted);
    None: the path's own (``MOUNT/.snapshot/NAME``), else a new ``snapshot_for_backup.N``."""

    def __init__(self, where: FilerPath, snapshot: str | None = None, *, holder: str | None = None,
                 say: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None) -> None:
        if snapshot is not None and where.snapshot is not None and snapshot != where.snapshot:
            raise DumpError(f"--snapshot {snapshot} and the path's snapshot {where.snapshot} differ: give one")
        self.where = where
        self.name: str | None = snapshot or where.snapshot
        self.holder = holder or f"{HOLDER_PREFIX}{os.getpid()}"
        self.created = False
        self.date = 0
        self.tree = None
        #: the volume's files under client I/O restriction (snapfs inode -> owner)
        self.restricted: dict[int, str] = {}
        self._say = say or (lambda line: None)
        self._warn = warn or (lambda line: None)
        self._client: Client | None = None
        self._volume_name: str | None = None
        self._held = False
        self._signals: dict[int, object] = {}

    # -- the context ---------------------------------------------------------------
    def __enter__(self) -> "BackupSnapshot":
        _catch_terminations(self._signals)  # SIGTERM, SIGHUP as ^C: the snapshot is given back on the way out
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def client(self) -> Client | None:
        """The open connection to the volume (None before it is opened and once closed)."""
        return self._client

    def volume_name(self) -> str:
        """The volume's name (asked of it once)."""
        if self._volume_name is None:
            self._volume_name = self._client.info().name
        return self._volume_name

    def _open(self) -> None:
        from snapfs.client import open_volume
        from snapfs.errors import SnapfsError

        from .snaptree import SnapshotTree

        mount = self.where.mount
        try:
            self._client = open_volume(mount)
            self._reap()
            self._restrictions()
            if self.name is None:
                self._create()
            self._restrictions()  # before and after: a restriction set or lifted meanwhile counts too
            self._client.snapshot_hold(self.name, self.holder)
            self._held = True
        except SnapfsError as exc:
            raise DumpError(f"{mount}: {exc.message}") from None
        self.tree = SnapshotTree(mount, self.name, self.where.rel, self._warn, holder=self.holder)
        self.tree.restricted = dict(self.restricted)
        self.date = self.tree.created_ns // 1_000_000_000
        how = "created" if self.created else "held"
        self._say(f"dumping snapshot {self.name} of {mount} ({how} for this dump, held by {self.holder})")

    def _reap(self) -> None:
        """Give back what killed dumps left: a ``snapshot_for_backup.N`` held only by
        ``pydump-PID`` holders whose process is gone (a SIGKILL, a crash) is released
        and deleted, said in a warning.  Any other holder keeps it as it is."""
        from snapfs.errors import SnapfsError

        c = self._client
        for snap in c.snapshot_list():
            if not snap.name.startswith(BACKUP_PREFIX) or not snap.holders:
                continue
            if not all(dead_dump(h) for h in snap.holders):
                continue
            try:
                for holder in snap.holders:
                    c.snapshot_release(snap.name, holder)
                c.snapshot_delete(snap.name)
            except SnapfsError as exc:
                self._warn(f"cannot give back snapshot {snap.name} of {self.where.mount}, left by "
                           f"{', '.join(snap.holders)} (gone): {exc.message}")
                continue
            self._warn(f"deleted snapshot {snap.name} of {self.where.mount}: {', '.join(snap.holders)} "
                       "held it and is gone")

    def _restrictions(self) -> None:
        """Note the files under client I/O restriction (a restore works on them): not dumped."""
        for r in self._client.restriction_list():
            self.restricted[r.ino] = r.owner

    def _create(self) -> None:
        """A new ``snapshot_for_backup.N``: refused with the volume's room advice when full."""
        from snapfs.errors import SnapfsError

        c = self._client
        info = c.info()
        self._volume_name = info.name
        if info.available < info.block_size:
            raise DumpError(f"cannot create a backup snapshot of {self.where.mount}: the volume is full; "
                            f"{c.room_advice()}")
        try:
            snap = c.snapshot_create()
        except SnapfsError as exc:
            if exc.errno == errno.ENOSPC:
                raise DumpError(f"cannot create a backup snapshot of {self.where.mount}: {exc.message}; "
                                f"{c.room_advice()}") from None
            raise
        self.name, self.created = snap.name, True

    def close(self) -> None:
        """Close the tree, release the hold, delete the snapshot this dump created.  A step
        that fails is a warning naming what is left for the operator to do.  SIGINT, SIGTERM
        and SIGHUP wait until it is done (a second ^C does not leave the snapshot held)."""
        from snapfs.errors import SnapfsError

        blocked = _block_signals()
        try:
            if self.tree is not None:
                self.tree.close()
                self.tree = None
            c, mount = self._client, self.where.mount
            if c is not None and self._held:
                try:
                    c.snapshot_release(self.name, self.holder)
                    self._held = False
                except SnapfsError as exc:
                    self._warn(f"cannot release snapshot {self.name} of {mount}: {exc.message} (release it with "
                               f"snapfs snapshot release {mount} {self.name} {self.holder})")
            if c is not None and self.created and not self._held:
                try:
                    c.snapshot_delete(self.name)
                    self.created = False
                except SnapfsError as exc:
                    self._warn(f"cannot delete snapshot {self.name} of {mount}: {exc.message} (delete it with "
                               f"snapfs snapshot delete {mount} {self.name})")
            if c is not None:
                c.close()
                self._client = None
        finally:
            _restore_handlers(self._signals)
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _catch_terminations(saved: dict[int, object]) -> None:
    """SIGTERM and SIGHUP end a dump as SIGINT does (a KeyboardInterrupt: one line, exit 3,
    nothing recorded); the handlers they had go into ``saved``.  Only the main thread can
    set handlers (an NDMP server's dumps run in others: it has its own)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            saved[sig] = signal.signal(sig, _terminate)
        except (OSError, ValueError):
            pass


def _restore_handlers(saved: dict[int, object]) -> None:
    while saved:
        sig, handler = saved.popitem()
        try:
            signal.signal(sig, handler)
        except (OSError, ValueError, TypeError):
            pass


@contextmanager
def dump_source(options: "DumpOptions", snapshot: str | None = None, *,
                say: Callable[[str], None] | None = None,
                warn: Callable[[str], None] | None = None, cab: bool = False,
                on_snapshot: Callable[[BackupSnapshot], None] | None = None,
                ) -> Iterator[tuple["DumpOptions", Callable[[str], None] | None]]:
    """``options`` made to read what pydump dumps for its SOURCE, and the ``say`` to give
    the dump: on a snapfs mount, a held snapshot (see :class:`BackupSnapshot`; given back
    when the block ends), else the live tree as it is.  Which one is said once, with the
    dump's first line (a dump refused before it says anything stays one line).

    On snapfs, an incremental is checked against its base (:mod:`dumptool.baselines`:
    refused when the volume changed identity, type, aggregate or generation since; ``cab``:
    the caller speaks NDMP's Cluster Aware Backup, a move keeping the identity is accepted),
    the files its base skipped under client I/O restriction are taken, and ``-u`` records
    the identity and what this dump skipped beside dumpdates.

    ``on_snapshot`` is shown the held snapshot (a restartable dump keeps it: its
    :attr:`~BackupSnapshot.created` set false, it is not deleted)."""
    where = locate(options.source)
    if where is None:
        if snapshot is not None:
            raise DumpError(f"--snapshot {snapshot}: {options.source} is not on a snapfs mount")
        saved: dict[int, object] = {}
        _catch_terminations(saved)
        try:
            yield options, _first(say, f"dumping a live file system: {os.path.abspath(options.source)} (no "
                                       "snapshot: what changes while it is read may be dumped inconsistently)")
        finally:
            _restore_handlers(saved)
        return
    if where.snapshot is None and snapshot is None and not os.path.isdir(options.source):
        what = "not a directory" if os.path.exists(options.source) else "no such directory"
        raise DumpError(f"cannot dump {os.path.abspath(options.source)}: {what}")  # before making a snapshot
    lines: list[str] = []
    with BackupSnapshot(where, snapshot, say=lines.append, warn=warn) as snap:
        if on_snapshot is not None:
            on_snapshot(snap)
        frozen = snap.date if options.frozen_at is None else options.frozen_at
        tree = snap.tree
        identity = Identity.of(tree.identity)
        baselines = Baselines(options.dumpdates)
        if options.level > 0 and options.base_date is None:  # -T names its own base: nothing to check
            base = DumpDates(options.dumpdates).base_for(where.live, options.level)
            entry = baselines.get(where.live, base.level, base.date)
            check_base(where.live, options.level, entry, base.level, identity, cab=cab)
            tree.carried = dict(entry.skipped)
        tree.keep_names = options.level > 0 or options.base_date is not None  # an incremental

        def before_record(path: str, level: int, date: int) -> None:
            baselines.put(Baseline(path, level, date, identity, dict(tree.skipped)))

        yield dataclasses.replace(options, source=where.live, tree=tree, frozen_at=frozen,
                                  before_record=before_record), _first(say, *lines)


def _first(say: Callable[[str], None] | None, *lines: str) -> Callable[[str], None] | None:
    """``say``, saying ``lines`` before its first line."""
    if say is None:
        return None
    pending = list(lines)

    def first(line: str) -> None:
        while pending:
            say(pending.pop(0))
        say(line)

    return first
