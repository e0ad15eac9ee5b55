"""Restartable dump contexts: what a dump of a snapfs volume interrupted in
its file stage leaves behind to go on from (ONTAP's restartable backups).

A dump of a snapfs path keeps a :class:`Context` from the start of stage IV
(Pass IV, regular files) in the ``contexts`` folder of the state folder
(:func:`dumptool.sessions.state_dir`, beside the dumpdates file):
``ID.json``, replaced atomically and durably (:func:`tapelib.durable.replace_file`)
at each checkpoint, and ``ID.fh``, the dump's offset map
(:mod:`dumptool.offsetmap`, moved there when stage IV begins and flushed to
the disk at each checkpoint; a restart goes on writing it, so the finished
map is the whole image's).  A checkpoint first flushes the image to its medium (and a file
medium to the disk), then names the last complete record there and the
inode it falls in, so a ``kill -9`` at any instant leaves either no context,
a context without a checkpoint (not restartable: :meth:`ContextStore.cleanup`
gives its snapshot back when the next dump starts), or a usable one.  The
dump's snapshot is held under the context's own name (``restartable-ID``)
from the first checkpoint on: ``snapfs snapshot list`` shows it, and it
cannot be deleted while the context lives.

When the dump completes, its context is removed.  When it is aborted in
stage IV (SIGINT, SIGTERM, a write error, the end of a tape with no next
cartridge) the context stays, the snapshot stays held (and is not deleted),
and ``pydump --restart ID -f NEXT`` (:mod:`dumptool.restart`) writes the
next volume.  ``pydump --contexts [ID]`` shows them as ONTAP's
``vserver services ndmp restartable-backup show`` does; ``pydump
--delete-context ID`` deletes one and gives its snapshot back.  A dump
aborted by a volume event's ``--override-vetoes`` or ``--automatic``
(:mod:`snapfs.vetoes`) keeps its context, marked not restartable.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import fcntl
import hashlib
import json
import os
import stat
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapdump.processes import process_alive, process_start
from tapelib.durable import replace_file, sync_folder

from .dump import Stage
from .errors import DumpError, RestartError
from .offsetmap import OffsetMapWriter
from .sessions import abort_reason, state_dir

if TYPE_CHECKING:
    from snapfs.client import Client

    from .dump import Cursor, Dump
    from .filer import BackupSnapshot
    from .traverse import DumpPlan

#: The holder name a context holds its snapshot under (then its id).
HOLDER_PREFIX = "restartable-"
#: Seconds between checkpoints (``SNAPDUMP_CHECKPOINT_SECONDS`` sets it; 0: after every inode).
CHECKPOINT_ENV = "SNAPDUMP_CHECKPOINT_SECONDS"
DEFAULT_CHECKPOINT_SECONDS = 1.0
#: Test hook: ``K:SIGNAL`` sends the dump SIGNAL (a name, ``SIGKILL``) after the K-th inode of stage IV.
TEST_SIGNAL_ENV = "SNAPDUMP_TEST_SIGNAL_AT"
#: The ``medium`` option of an NDMP backup's context (pyndmpd's, :mod:`ndmp.restartable`).
NDMP_MEDIUM = "NDMP data connection"
#: The dump stage restarts go on from (ONTAP's "Restart Pass").
RESTART_PASS = 4
_FILES = Stage.FILES
#: Inode starts remembered for the checkpoint's choice (more than a record of 256 one-block files).
_RECENT_STARTS = 2048


class Status(enum.IntEnum):
    """"Status of Backup"."""

    RUNNING = 1
    ABORTED = 2


class State(enum.IntEnum):
    """"State of the Context"."""

    STARTED = 1        # stage IV began, no checkpoint yet: not restartable
    CHECKPOINTED = 4   # writing files, a usable checkpoint saved
    RESTARTABLE = 7    # aborted in stage IV with a usable checkpoint
    CLEANUP = 8        # being deleted


@dataclasses.dataclass
class Checkpoint:
    """Where an interrupted dump goes on from.

    ``volume`` holds the image up to block ``medium_block`` (the end of its
    last complete record, ``medium_address`` there: a file's byte offset, a
    tape's logical block); the stream is written again from ``resume_block``,
    the first block of inode ``ino`` (``index`` in the dump's order:
    directories, then files), which is where ``medium_block`` falls;
    ``unnumbered`` counts the volume headers that took no block number."""

    volume: int
    index: int
    ino: int
    resume_block: int
    medium_block: int
    unnumbered: int
    medium: str
    medium_address: int | None
    is_tape: bool
    file_id: tuple[int, int] | None = None   # (st_dev, st_ino) of a file medium
    tape_file: int | None = None
    barcode: str | None = None               # the cartridge of a shelf drive medium

    @property
    def offset(self) -> int:
        """Bytes of inode ``ino``'s records on the medium before the cut."""
        return (self.medium_block - self.resume_block) * 1024


@dataclasses.dataclass
class Context:
    """One restartable dump (see the module's text)."""

    id: str
    vserver: str
    volume_name: str
    mount: str
    rel: str
    dump_path: str
    snapshot: str
    auto_created: bool
    level: int
    date: int
    base_date: int
    options: dict[str, Any]
    file_history: bool
    fingerprint: str
    pid: int
    status: int = Status.RUNNING
    state: int = State.STARTED
    cleanup_pending: bool = False
    updated: int = 0
    reason: str = ""
    restarts: int = 0
    checkpoint: Checkpoint | None = None
    vetoed: str = ""   # aborted for a volume event (--override-vetoes, --automatic): not restartable
    pid_start: int | None = None  # /proc/PID/stat's start time of ``pid`` (a reused pid is another process)

    @property
    def holder(self) -> str:
        return HOLDER_PREFIX + self.id

    def take_for_restart(self) -> None:
        """This process restarts the context: it is busy from now on (its pid and
        the pid's start time, so that :attr:`busy` knows it), one restart more."""
        self.pid, self.pid_start = os.getpid(), process_start(os.getpid())
        self.status, self.state = Status.RUNNING, State.CHECKPOINTED
        self.restarts += 1

    @property
    def dump_name(self) -> str:
        return f"/{self.vserver}/{self.volume_name}" + (f"/{self.rel}" if self.rel else "")

    @property
    def runner(self) -> str:
        """What runs its dump: ``pydump``, or ``pyndmpd`` for an NDMP backup's (:mod:`ndmp.restartable`)."""
        return "pyndmpd" if self.options.get("medium") == NDMP_MEDIUM else "pydump"

    @property
    def busy(self) -> bool:
        """Whether a pydump runs it now."""
        return self.status == Status.RUNNING and process_alive(self.pid, self.pid_start)

    @property
    def shown_status(self) -> Status:
        """The status as it stands: a dump killed (``kill -9``) while running is aborted."""
        return Status.RUNNING if self.busy else Status.ABORTED

    @property
    def shown_state(self) -> State:
        """The state as it stands: killed after a checkpoint, it is restartable."""
        if self.state == State.CHECKPOINTED and not self.busy:
            return State.RESTARTABLE
        return State(self.state)

    def refusal(self, snapshots: Sequence[str] | None) -> str | None:
        """Why it cannot be restarted (ONTAP's three conditions, and busy),
        or None; ``snapshots``: the volume's snapshot names (None: unknown)."""
        if self.busy:
            return f"context {self.id} is busy: {self.runner} {self.pid} is running it"
        if self.cleanup_pending:
            return f"context {self.id} is being deleted (Is Cleanup Pending?: true)"
        if self.vetoed:
            return (f"the dump of context {self.id} was aborted by the {self.vetoed}: it cannot be restarted; "
                    "delete it and dump again")
        if self.checkpoint is None or self.shown_state != State.RESTARTABLE:
            return (f"the dump of context {self.id} was not aborted in stage IV after a checkpoint "
                    "(it stopped before its first one): it cannot be restarted; delete it and dump again")
        if snapshots is not None and self.snapshot not in snapshots:
            return (f"snapshot {self.snapshot} of {self.mount}, which context {self.id} locked, is gone: "
                    "it cannot be restarted; delete it and dump again")
        if not self.file_history:
            return (f"the dump of context {self.id} kept no file history (--no-file-history): "
                    "it cannot be restarted; delete it and dump again")
        if self.options.get("compress") is not None or self.options.get("volume_blocks"):
            return f"the dump of context {self.id} used -z/-j or -B, which a restart does not support yet"
        return None

    def to_json(self) -> bytes:
        return (json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Context":
        raw = json.loads(data)
        cp = raw.pop("checkpoint", None)
        if cp is not None:
            if cp.get("file_id") is not None:
                cp["file_id"] = tuple(cp["file_id"])
            cp = Checkpoint(**cp)
        return cls(**raw, checkpoint=cp)


class ContextStore:
    """The contexts of this machine (``STATE/contexts``)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else state_dir() / "contexts"

    def path(self, cid: str) -> Path:
        return self.folder / f"{cid}.json"

    def offsets_path(self, cid: str) -> Path:
        return self.folder / f"{cid}.fh"

    def save(self, ctx: Context) -> None:
        ctx.updated = int(time.time())
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            replace_file(self.path(ctx.id), ctx.to_json(), 0o600)
        except OSError as exc:
            raise DumpError(f"cannot write the restartable context {self.path(ctx.id)}: "
                            f"{exc.strerror or exc}") from None

    def load(self, cid: str) -> Context:
        if not cid or "/" in cid or cid.startswith("."):
            raise DumpError(f"{cid!r} is not a context identifier")
        try:
            data = self.path(cid).read_bytes()
        except FileNotFoundError:
            raise DumpError(f"no restartable context {cid} (pydump --contexts lists them)") from None
        except OSError as exc:
            raise DumpError(f"cannot read the restartable context {cid}: {exc.strerror}") from None
        try:
            return Context.from_json(data)
        except (ValueError, TypeError, KeyError) as exc:
            raise DumpError(f"the restartable context {self.path(cid)} is damaged ({exc}): delete it with "
                            f"pydump --delete-context {cid}") from None

    def all(self) -> list[Context]:
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DumpError(f"cannot read the contexts folder {self.folder}: {exc.strerror}") from None
        found = []
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                try:
                    found.append(self.load(name[:-5]))
                except DumpError:
                    continue
        return sorted(found, key=lambda c: (c.vserver, c.id))

    def lock(self, cid: str) -> int:
        """Take context ``cid`` for this process (a restart, a delete): an
        open lock file whose lock the kernel drops however the process ends;
        DumpError when another holds it.  Close the descriptor to let go."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / f".{cid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise DumpError(f"cannot lock restartable context {cid}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DumpError(f"context {cid} is busy: another pydump is restarting or deleting it") from None
        return fd

    def remove(self, cid: str) -> None:
        for path in (self.path(cid), self.offsets_path(cid), self.folder / f".{cid}.lock"):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        sync_folder(self.folder)

    def delete(self, ctx: Context, warn: Callable[[str], None]) -> bool:
        """Delete ``ctx``: its holds released, its snapshot deleted when the
        dump created it, its files removed ("Is Cleanup Pending?" meanwhile).
        False when the volume's path is gone and nothing could be given back
        (said through ``warn``)."""
        if ctx.busy:
            raise DumpError(f"context {ctx.id} is busy: {ctx.runner} {ctx.pid} is running it; stop it first")
        fd = self.lock(ctx.id)
        try:
            ctx.cleanup_pending = True
            ctx.state = State.CLEANUP
            self.save(ctx)
            given = os.path.lexists(ctx.mount)
            if given:
                give_back(ctx.mount, ctx.snapshot, ctx.holder, delete=ctx.auto_created)
            else:  # the volume's path is gone for good (an unmounted volume leaves its mount point)
                what = f"release its hold {ctx.holder}" + (" and delete it" if ctx.auto_created else "")
                warn(f"context {ctx.id}: {ctx.mount} no longer exists, so snapshot {ctx.snapshot} was not given "
                     f"back; if the volume comes back, {what} there with snapfs snapshot")
            self.remove(ctx.id)
        finally:
            os.close(fd)
        return given

    def cleanup(self, warn: Callable[[str], None]) -> None:
        """Give back what dumps killed before their first checkpoint left (not restartable)."""
        for ctx in self.all():
            if ctx.busy or (ctx.checkpoint is not None and not ctx.cleanup_pending):
                continue
            try:
                given = self.delete(ctx, warn)
            except DumpError as exc:
                warn(f"cannot clean up context {ctx.id}: {exc.message}")
                continue
            warn(f"deleted context {ctx.id} (its dump ended before it could be restarted)"
                 + (f" and gave back snapshot {ctx.snapshot} of {ctx.mount}" if given else ""))


def new_context_id() -> str:
    """A new context identifier: a random (version 4) UUID, as ``str(uuid.uuid4())`` spells it
    (made here: the uuid module costs a dump's start-up more than the rest of its context)."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40
    b[8] = b[8] & 0x3F | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def snapshot_names(mount: str) -> list[str] | None:
    """The snapshots of the volume mounted at ``mount`` (None when it cannot be asked)."""
    try:
        from snapfs.client import open_volume
        from snapfs.errors import SnapfsError
    except ImportError:
        return None
    try:
        with open_volume(mount) as c:
            return [s.name for s in c.snapshot_list()]
    except (SnapfsError, OSError):
        return None


def take_hold(mount: str, snapshot: str, holder: str, *, client: Client | None = None) -> None:
    """``holder`` holds ``snapshot`` of the volume at ``mount`` (asked through ``client``
    when the caller has one open to it, else through a connection of its own)."""
    from snapfs.errors import SnapfsError

    try:
        with _connection(mount, client) as c:
            c.snapshot_hold(snapshot, holder)
    except SnapfsError as exc:
        raise DumpError(f"cannot hold snapshot {snapshot} of {mount} for a restartable context: "
                        f"{exc.message}") from None


def give_back(mount: str, snapshot: str, holder: str, *, delete: bool, client: Client | None = None) -> None:
    """Release ``holder``'s hold on ``snapshot`` (and those of pydumps that
    are gone); delete it when ``delete`` and nobody else holds it.  ``client``:
    a connection to the volume the caller has open (else one of its own)."""
    try:
        from snapfs.errors import SnapfsError
    except ImportError:
        raise DumpError(f"cannot give back snapshot {snapshot} of {mount}: snapfs is not installed") from None

    from .filer import dead_dump

    try:
        with _connection(mount, client) as c:
            snaps = {s.name: s for s in c.snapshot_list()}
            snap = snaps.get(snapshot)
            if snap is None:
                return
            for h in snap.holders:
                if h == holder or dead_dump(h):
                    c.snapshot_release(snapshot, h)
            if delete:
                left = [h for h in c.snapshot_list() if h.name == snapshot][0].holders
                if not left:
                    c.snapshot_delete(snapshot)
    except (SnapfsError, OSError) as exc:
        message = getattr(exc, "message", None) or getattr(exc, "strerror", None) or str(exc)
        raise DumpError(f"cannot give back snapshot {snapshot} of {mount}: {message}") from None


@contextlib.contextmanager
def _connection(mount: str, client: Client | None) -> Iterator[Client]:
    """``client`` as it is (its owner closes it), or a connection to ``mount`` for the block."""
    if client is not None:
        yield client
        return
    from snapfs.client import open_volume

    with open_volume(mount) as c:
        yield c


def fingerprint(plan: DumpPlan) -> str:
    """What the dump's order of inodes is, as a digest: a restart checks
    that walking the snapshot again gives the same ("Offset Verify")."""
    h = hashlib.sha256(struct.pack("<qq", plan.maxino, len(plan.nodes)))
    pack = struct.Struct("<qqqq").pack
    nodes = plan.nodes
    h.update(b"".join([pack(ino, n.st_ino, n.st_size, n.st_mtime_ns)  # one update: the same digest
                       for seq in (plan.directories, plan.files) for ino in seq for n in (nodes[ino],)]))
    return h.hexdigest()


class ContextKeeper:
    """Keeps the context of one dump run (a new dump, or a restart of
    ``context``): :meth:`observe` is given the held snapshot, :meth:`run`
    runs the dump, checkpointing as it goes."""

    def __init__(self, store: ContextStore, *, file_history: bool = True, context: Context | None = None,
                 say: Callable[[str], None], warn: Callable[[str], None]) -> None:
        self.store = store
        self.file_history = file_history if context is None else context.file_history
        self.ctx = context
        self.say = say
        self.warn = warn
        self.snap: BackupSnapshot | None = None
        #: The dump's offset map (:mod:`dumptool.offsetmap`): from stage IV on it is
        #: the context's too, kept as ``ID.fh`` beside it (a restart goes on with it).
        self.offsets: OffsetMapWriter | None = None
        self._id = context.id if context is not None else new_context_id()
        if self.file_history:
            if context is not None and context.checkpoint is not None:
                self.offsets = OffsetMapWriter(warn=warn, kept=store.offsets_path(self._id),
                                               cut=context.checkpoint.medium_block)
            else:
                self.offsets = OffsetMapWriter(warn=warn)
        self._recent: collections.deque[tuple[int, int]] = collections.deque(maxlen=_RECENT_STARTS)
        self._interval = _interval()
        self._last = 0.0
        self._ndirs = self._total = 0
        self._hook = _test_hook()
        self._tape_volume = 0
        self._tape_barcode: str | None = None

    @property
    def active(self) -> bool:
        return self.snap is not None

    def observe(self, snap: BackupSnapshot) -> None:
        """``dump_source``'s ``on_snapshot``: the dump reads this held snapshot."""
        self.snap = snap

    def histories(self) -> tuple:
        return (self.offsets,) if self.active and self.offsets is not None else ()

    def run(self, dump: Dump, resume: Callable | None = None) -> None:
        """Run ``dump`` (``resume``: :meth:`Dump.steps`'s), keeping its context."""
        try:
            step = self._step
            for cursor in dump.steps(resume):
                if self.snap is not None:  # (self.active, once per inode)
                    step(dump, cursor)
        except BaseException as exc:
            if self.active:
                self._aborted(exc)
            raise
        if self.active:
            self._completed()

    # -- checkpoints ----------------------------------------------------------------
    def _step(self, dump: Dump, cursor: Cursor) -> None:
        stage = cursor.stage
        if stage is _FILES and self.ctx is not None:  # most inodes: one of stage IV's after the first
            index = self._ndirs + cursor.done
            if index < self._total:
                self._recent.append((index, cursor.next_block))
            hook = self._hook
            if hook is not None and index - self._ndirs == hook[0]:
                self._checkpoint_at(dump, True)
            elif time.monotonic() - self._last >= self._interval:
                self._checkpoint_at(dump, False)
            return
        if stage is _FILES:
            index = self._ndirs + cursor.done
        elif stage is Stage.DIRECTORIES:
            index = cursor.done
        elif stage is Stage.MAP:
            self._ndirs = len(dump.plan.directories)
            self._total = self._ndirs + len(dump.plan.files)
            return
        else:
            if stage is Stage.END:
                self._completed()
                self.snap = None  # nothing more to keep
            return
        if index < self._total:
            self._recent.append((index, cursor.next_block))  # where inode ``index`` starts
        if index < self._ndirs:
            return
        if self.ctx is None:  # stage IV begins (a restart's context is taken by dumptool.restart)
            if not _positioned(dump):
                self.snap = None  # a pipe: what its reader kept is unknown, nothing to go on from
                return
            self._begin(dump)
        hook = self._hook is not None and index - self._ndirs == self._hook[0]
        if hook and self._hook[0] == 0:  # killed before the first checkpoint
            os.kill(os.getpid(), self._hook[1])
        self._checkpoint_at(dump, hook)

    def _checkpoint_at(self, dump: Dump, hook: bool) -> None:
        """A checkpoint when the interval is over; then the test hook's signal when ``hook``."""
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._checkpoint(dump)
        if hook:
            os.kill(os.getpid(), self._hook[1])

    def _begin(self, dump: Dump) -> None:
        """Stage IV begins: the context is written (no checkpoint yet)."""
        snap = self.snap
        opts = dump.options
        vserver = os.uname().nodename
        self.ctx = Context(
            id=self._id, vserver=vserver, volume_name=_volume_name(snap), mount=snap.where.mount,
            rel=snap.where.rel, dump_path=dump.filesys, snapshot=snap.name, auto_created=snap.created,
            level=opts.level, date=dump.date, base_date=dump.base_date,
            options={"ntrec": opts.ntrec, "label": opts.label, "dumpdates": opts.dumpdates, "update": opts.update,
                     "exclude": sorted(opts.exclude), "metaonly": opts.metaonly, "honor_level": opts.honor_level,
                     "compress": opts.compress, "compress_level": opts.compress_level,
                     "volume_blocks": opts.volume_blocks, "multivolume": opts.multivolume,
                     "output": opts.output},
            file_history=self.file_history, fingerprint=fingerprint(dump.plan), pid=os.getpid(),
            pid_start=process_start(os.getpid()))
        self.store.save(self.ctx)
        # the map moves beside the context once the context is there (removed with it)
        if self.offsets is not None:
            if self.offsets.keep(self.store.offsets_path(self._id)):
                sync_folder(self.store.folder)
            else:
                self.ctx.file_history = False
                self.store.save(self.ctx)
        take_hold(snap.where.mount, snap.name, self.ctx.holder, client=snap.client)

    def _checkpoint(self, dump: Dump) -> None:
        """Flush the image, then save where its last complete record ends."""
        writer = dump.writer
        if writer is None or getattr(writer, "resuming", False):
            return
        writer.flush()
        pending = writer.blocks_pending
        end = writer.next_block - pending
        position = writer.position
        if position.block_number <= 0 and not writer.sink.is_tape:
            return  # nothing whole on this volume yet
        start = None
        for index, block in reversed(self._recent):
            if block <= end:
                plan = dump.plan
                ino = plan.directories[index] if index < self._ndirs else plan.files[index - self._ndirs]
                start = (index, ino, block)
                break
        if start is None or end <= 0:
            return
        sink = writer.sink
        fd = getattr(sink, "fd", None)
        file_id = None
        if fd is not None:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                os.fsync(fd)
                file_id = (st.st_dev, st.st_ino)
        if self.offsets is not None and not self.offsets.sync():
            self.ctx.file_history = False  # its offset map was lost: not restartable
        name = sink.name
        if not sink.is_tape and name not in ("standard output",) and not name.startswith("fd "):
            name = os.path.abspath(name)
        self.ctx.checkpoint = Checkpoint(
            volume=writer.volume, index=start[0], ino=start[1], resume_block=start[2], medium_block=end,
            unnumbered=writer.unnumbered, medium=name, medium_address=writer.address, is_tape=sink.is_tape,
            file_id=file_id, tape_file=position.file_number if sink.is_tape else None,
            barcode=self._barcode(dump) if sink.is_tape else None)
        self.ctx.state = State.CHECKPOINTED
        self.store.save(self.ctx)

    def _barcode(self, dump: Dump) -> str | None:
        """The cartridge the current volume is on (asked once a volume)."""
        volume = dump.writer.volume
        if self._tape_volume != volume:
            from .restart import loaded_barcode

            self._tape_volume, self._tape_barcode = volume, loaded_barcode(dump.options.output)
        return self._tape_barcode

    def _aborted(self, exc: BaseException) -> None:
        ctx, snap = self.ctx, self.snap
        if ctx is None or snap is None:
            return  # before stage IV: nothing is kept
        if isinstance(exc, RestartError):  # refused: the context stays as it was
            ctx.status = Status.ABORTED
            self.store.save(ctx)
            snap.created = False
            return
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else getattr(exc, "message", None) or str(exc)
        vetoed = abort_reason(os.getpid())  # a volume event's override aborted it
        if ctx.checkpoint is None:
            # nothing to go on from: given back as a dump aborted earlier
            try:
                give_back(ctx.mount, ctx.snapshot, ctx.holder, delete=False, client=snap.client)
            except DumpError as err:
                self.warn(err.message)
            self.store.remove(ctx.id)
            self.ctx = None
            return
        ctx.status = Status.ABORTED
        ctx.state = State.RESTARTABLE
        ctx.reason = reason
        ctx.vetoed = vetoed or ""
        try:
            self.store.save(ctx)
        except DumpError as err:
            self.warn(err.message)
        snap.created = False  # kept (and held by the context)
        cp = ctx.checkpoint
        refusal = ctx.refusal(None)
        if refusal is None:
            self.say(f"the dump can be restarted: context {ctx.id} keeps snapshot {ctx.snapshot} held; volume "
                     f"{cp.volume} ({cp.medium}) is good up to block {cp.medium_block}; go on with "
                     f"pydump --restart {ctx.id} -f NEXT-VOLUME")
        else:
            self.say(f"context {ctx.id} keeps snapshot {ctx.snapshot} held, but {refusal}")

    def _completed(self) -> None:
        ctx = self.ctx
        if ctx is None:
            return
        self.ctx = None
        if self.offsets is not None:
            self.offsets.close()
        try:
            give_back(ctx.mount, ctx.snapshot, ctx.holder, delete=False,
                      client=self.snap.client if self.snap is not None else None)
        except DumpError as exc:
            self.warn(exc.message)
        if self.snap is not None and ctx.auto_created:
            self.snap.created = True  # deleted once the dump lets it go
        self.store.remove(ctx.id)


def _positioned(dump: Dump) -> bool:
    """Whether the dump writes where positions last (a tape, or a regular
    file) in a way a restart can go on with (not yet: -z/-j, -B)."""
    if dump.options.compress is not None or dump.options.volume_blocks:
        return False
    sink = dump.writer.sink
    if sink.is_tape:
        return True
    fd = getattr(sink, "fd", None)
    if fd is None:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


def _volume_name(snap: BackupSnapshot) -> str:
    try:
        return snap.volume_name()
    except Exception:  # a name for the listing only
        mount = snap.where.mount
        return os.path.basename(mount.rstrip("/")) or mount


def _interval() -> float:
    text = os.environ.get(CHECKPOINT_ENV, "").strip()
    if not text:
        return DEFAULT_CHECKPOINT_SECONDS
    try:
        return max(0.0, float(text))
    except ValueError:
        raise DumpError(f"{CHECKPOINT_ENV}={text}: give seconds") from None


def _test_hook() -> tuple[int, int] | None:
    import signal

    text = os.environ.get(TEST_SIGNAL_ENV, "").strip()
    if not text:
        return None
    count, _, name = text.partition(":")
    return int(count), int(getattr(signal, name or "SIGTERM"))


# -- what pydump --contexts shows ---------------------------------------------------------

def _yes(flag: bool) -> str:
    return "true" if flag else "false"


def listing(contexts: Sequence[Context]) -> str:
    """``restartable-backup show``: a line per context."""
    if not contexts:
        return "There are no entries matching your query.\n"
    lines = [f"{'Vserver':<11} {'Context Identifier':<36} Is Cleanup Pending?",
             f"{'-' * 11} {'-' * 36} {'-' * 19}"]
    lines += [f"{c.vserver:<11} {c.id:<36} {_yes(c.cleanup_pending)}" for c in contexts]
    if len(contexts) > 1:
        lines.append(f"{len(contexts)} entries were displayed.")
    return "\n".join(lines) + "\n"


def details(ctx: Context, snapshots: Sequence[str] | None) -> str:
    """``restartable-backup show -context-id ID``: the seed's fields with their values."""
    fields = [
        ("Vserver", ctx.vserver),
        ("Context Identifier", ctx.id),
        ("Volume Name", f"/{ctx.vserver}/{ctx.volume_name}"),
        ("Is Cleanup Pending?", _yes(ctx.cleanup_pending)),
        ("Backup Engine Type", "dump"),
        ("Is Snapshot Copy Auto-created?", _yes(ctx.auto_created)),
        ("Dump Path", ctx.dump_path),
        ("Incremental Backup Level ID", str(ctx.level)),
        ("Dump Name", ctx.dump_name),
        ("Context Last Updated Time", str(ctx.updated)),
        ("Has Offset Map?", _yes(ctx.file_history)),
        ("Offset Verify", _yes(bool(ctx.fingerprint))),
        ("Is Context Restartable?", _yes(ctx.refusal(snapshots) is None)),
        ("Is Context Busy?", _yes(ctx.busy)),
        ("Restart Pass", str(RESTART_PASS)),
        ("Status of Backup", str(int(ctx.shown_status))),
        ("Snapshot Copy Name", ctx.snapshot),
        ("State of the Context", str(int(ctx.shown_state))),
    ]
    if "restart_offset" in ctx.options:  # an NDMP backup's: where the DMA ends the interrupted tape
        fields.append(("NDMP Restart Offset", str(ctx.options["restart_offset"])))
    return "\n".join(f"{label:>30}: {value}" for label, value in fields) + "\n"
