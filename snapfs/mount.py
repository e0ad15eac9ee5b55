"""Mounting a volume: the daemon that serves FUSE and the control channel.

:func:`mount` returns once the mount is usable, like mount(8): it forks a
daemon (double fork, new session, stdio on /dev/null) that opens the volume,
mounts, binds the control socket and only then writes ``OK`` into a pipe; any
failure before that comes back through the pipe as one line and
:func:`mount` raises it as :class:`SnapfsError`.  With ``foreground`` the
caller's process is the daemon.

The daemon stops when the file system is unmounted (``snapfs unmount`` or
``fusermount3 -u``) or on SIGTERM/SIGINT/SIGHUP (then it unmounts itself);
either way it closes the Volume, which makes every change durable.  The
Volume runs in batch mode: calls commit together every :data:`COMMIT_INTERVAL`
seconds and at once on fsync (a commit per request cost more than the request
itself), each call still all-or-nothing; so a killed daemon leaves a
consistent volume that lacks at most the last interval's un-fsync'ed changes.
:func:`unmount` waits until the daemon has let go of the volume, so a command
run next (fsck, another mount) finds it free.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

from . import control, privacy
from .errors import NotAVolume, SnapfsError, VolumeBusy, err
from .volume import LOCK_FILE, Volume

LOG_FILE = "mount.log"
#: Seconds between commits of the daemon's batched Volume calls (fsync, statfs and
#: control commands commit at once).
COMMIT_INTERVAL = 0.05
#: Kernel readahead of the mount: sequential reads arrive as requests this large
#: (the kernel's default, 128 KiB, costs eight requests per MiB).
READ_AHEAD_KIB = 1024
_log = logging.getLogger("snapfs.mount")


def _check_mountpoint(mountpoint: Path) -> None:
    try:
        os.statvfs(mountpoint)
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise err(errno.ENOTCONN, f"{mountpoint} holds a stale mount that is not a snapfs volume's (Transport"
                      f" endpoint is not connected): clear it with 'fusermount3 -u {mountpoint}'") from None
    if not mountpoint.is_dir():
        raise err(errno.ENOTDIR, f"mount point {mountpoint} is not a directory")
    if os.path.ismount(mountpoint):
        raise err(errno.EBUSY, f"{mountpoint} is already a mount point; unmount it first")


def _fuse_options(vol: Volume, options: list[str]) -> set[str]:
    import pyfuse3

    opts = set(pyfuse3.default_options)
    opts |= {"fsname=" + str(Path(vol.path).resolve()).replace(",", "_"), "subtype=snapfs"}
    opts |= {o for o in options if o}
    return opts


class _MountEntry(NamedTuple):
    device: str  # major:minor
    fstype: str  # fuse.snapfs for ours
    source: str  # ours: the volume folder (fsname)


def _mount_entry(mountpoint: Path) -> _MountEntry | None:
    """The newest mount on ``mountpoint`` as mountinfo lists it (which does not
    touch the mount: its daemon may not be serving yet, or be dead)."""
    want = os.fsencode(mountpoint)
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):  # the newest mount on a path is listed last
        fields = line.split()
        if _unescape(fields[4]) == want and b"-" in fields[6:]:
            sep = fields.index(b"-", 6)
            return _MountEntry(fields[2].decode(), os.fsdecode(fields[sep + 1]),
                               os.fsdecode(_unescape(fields[sep + 2])))
    return None


def _unescape(field: bytes) -> bytes:
    """A mountinfo path: space, tab, newline and backslash appear as octal escapes such as \\040."""
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field)


def _mount_device(mountpoint: Path) -> str | None:
    """``major:minor`` of the file system mounted on ``mountpoint``."""
    entry = _mount_entry(mountpoint)
    return entry.device if entry else None


def stale_mount(mountpoint: str | os.PathLike) -> Path | None:
    """The volume folder of a snapfs mount on ``mountpoint`` whose daemon is gone
    (killed: the kernel answers ENOTCONN, "Transport endpoint is not
    connected"); None when ``mountpoint`` holds no such mount."""
    mountpoint = Path(os.path.abspath(mountpoint))
    try:
        os.statvfs(mountpoint)  # always asked of the daemon: stat may be answered from the kernel's cache
        return None
    except OSError as e:
        if e.errno != errno.ENOTCONN:
            return None
    entry = _mount_entry(mountpoint)
    if entry is None or entry.fstype != "fuse.snapfs":
        return None
    return Path(entry.source)


def clear_stale(mountpoint: str | os.PathLike) -> None:
    """Detach a stale mount (:func:`stale_mount`) as ``fusermount3 -u`` does; lazily if something still uses it."""
    for args in (["-u"], ["-u", "-z"]):
        r = subprocess.run(["fusermount3", *args, str(mountpoint)], capture_output=True, text=True)
        if r.returncode == 0:
            return
    msg = (r.stderr.strip().splitlines() or ["fusermount3 failed"])[-1]
    raise SnapfsError(f"cannot clear the stale mount on {mountpoint}: {msg}", errno.EIO)


def _set_read_ahead(mountpoint: Path) -> None:
    """Raise the mount's readahead to :data:`READ_AHEAD_KIB` (root only; else left as it is)."""
    dev = _mount_device(mountpoint)
    if dev is None:
        return
    try:
        Path(f"/sys/class/bdi/{dev}/read_ahead_kb").write_text(f"{READ_AHEAD_KIB}\n")
    except OSError:
        pass


class _NoWaitLock:
    """Stands in for the trio.Lock that pyfuse3 takes around each wait for a request.

    With one worker task (see :func:`_serve`) nobody else ever holds it, yet
    trio.Lock.acquire yields to the scheduler every time: one more pass of the
    event loop (and an epoll call) per request."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc) -> None:
        return None


class _SingleReaderTrio:
    """pyfuse3's view of trio (it looks trio up through its module attribute
    ``trio``, which is how pyfuse3.asyncio replaces it): trio itself, but with
    :class:`_NoWaitLock` as Lock."""

    Lock = _NoWaitLock

    def __init__(self, trio) -> None:
        self._trio = trio

    def __getattr__(self, name: str):
        return getattr(self._trio, name)


def _serve(vol: Volume, mountpoint: Path, options: list[str], ready) -> None:
    """Mount, report readiness through ``ready()``, serve until unmounted, close the volume."""
    import pyfuse3
    import trio

    from .fuse_ops import SnapfsOperations

    for line in privacy.tighten(vol.path):  # a volume made before its files were private
        _log.warning("%s", line)
    ops = SnapfsOperations(vol)
    vol.set_batch(True)
    # nothing may touch the mount point from here until pyfuse3.main() runs: it would deadlock
    extra = {"mountpoint": str(mountpoint), "pid": os.getpid()}
    try:
        pyfuse3.init(ops, str(mountpoint), _fuse_options(vol, options))
    except RuntimeError as e:
        raise err(errno.EIO, f"cannot mount {vol.path} on {mountpoint}: {e} (see fusermount3)") from None
    if getattr(pyfuse3, "trio", None) is trio:
        pyfuse3.trio = _SingleReaderTrio(trio)  # for good: the daemon serves one mount
    listeners = [control.listen(vol.path)]
    stopped_by_signal = False

    async def main() -> None:
        initialized = trio.Event()
        ops.on_init = initialized.set

        async def tune_mount() -> None:
            # after the kernel's INIT, which would cut the readahead back to its default
            await initialized.wait()
            _set_read_ahead(mountpoint)

        async def on_signal() -> None:
            nonlocal stopped_by_signal
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
                async for _ in sigs:
                    stopped_by_signal = True
                    pyfuse3.terminate()
                    return

        async def committer() -> None:
            while True:
                await trio.sleep(COMMIT_INTERVAL)
                vol.commit()

        async with trio.open_nursery() as nursery:

            def moved() -> None:
                """The volume's folder moved (snapfs.moving): answer for the new one."""
                ops.voldir = str(Path(vol.path).resolve())
                _log_to(Path(vol.path))
                if not control.socket_path(vol.path).exists():  # copied: the socket stayed behind
                    listeners.append(control.listen(vol.path))
                    nursery.start_soon(control.serve, listeners[-1], vol, extra, ops.snapshots_changed, moved)

            nursery.start_soon(committer)
            nursery.start_soon(control.serve, listeners[0], vol, extra, ops.snapshots_changed, moved)
            nursery.start_soon(on_signal)
            nursery.start_soon(tune_mount)
            ready()
            # One worker task: the handlers never wait, so a second one would only add
            # scheduling (and the lock above would then be needed).
            await pyfuse3.main(min_tasks=1, max_tasks=1)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        try:
            pyfuse3.close(unmount=stopped_by_signal)
        finally:
            for listener in listeners:
                listener.close()
            try:
                control.socket_path(vol.path).unlink()
            except FileNotFoundError:
                pass
            vol.close()


def _log_to(voldir: Path) -> None:
    """Point the daemon's mount log at ``voldir``'s (after a volume move copied the folder)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename).name == LOG_FILE:
            if Path(h.baseFilename).parent == voldir:
                continue
            root.removeHandler(h)
            h.close()
            new = logging.FileHandler(voldir / LOG_FILE)
            new.setFormatter(h.formatter)
            root.addHandler(new)


def mount(voldir: str | os.PathLike, mountpoint: str | os.PathLike, foreground: bool = False,
          options: list[str] | None = None) -> None:
    """Mount the volume in ``voldir`` on ``mountpoint``; see the module docstring."""
    voldir, mountpoint, options = Path(voldir).resolve(), Path(mountpoint).resolve(), list(options or [])
    _check_mountpoint(mountpoint)
    if foreground:
        vol = Volume.open(voldir)
        _serve(vol, mountpoint, options, lambda: None)
        return
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        os.waitpid(pid, 0)
        with os.fdopen(r, "rb") as f:
            answer = f.read().decode(errors="replace").strip()
        if answer == "OK":
            return
        code, _, message = answer.partition(" ")
        if not message:
            raise err(errno.EIO, f"the mount daemon for {voldir} died before the mount was ready")
        raise SnapfsError(message, int(code))
    # first child: detach and fork the daemon
    os.close(r)
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        _daemon(voldir, mountpoint, options, w)
    except BaseException:
        os._exit(1)
    os._exit(0)


def _daemon(voldir: Path, mountpoint: Path, options: list[str], w: int) -> None:
    os.closerange(3, w)
    os.closerange(w + 1, 65536)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    os.chdir("/")
    reported = False

    def report(line: str) -> None:
        nonlocal reported
        if not reported:
            reported = True
            os.write(w, line.encode())
            os.close(w)

    try:
        vol = Volume.open(voldir)
    except SnapfsError as e:
        report(f"{e.errno} {e.message}")
        return
    try:
        privacy.create_private(voldir / LOG_FILE)
    except OSError as e:
        vol.close()
        report(f"{e.errno} cannot open the mount log {voldir / LOG_FILE}: {e.strerror}")
        return
    logging.basicConfig(filename=str(voldir / LOG_FILE), level=logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        _serve(vol, mountpoint, options, lambda: report("OK"))
    except SnapfsError as e:
        report(f"{e.errno} {e.message}")
    except BaseException as e:  # the daemon's last word goes to the log and the waiting parent
        _log.exception("mount daemon failed")
        report(f"{errno.EIO} mount daemon failed: {e}")


def _wait_released(voldir: Path, timeout: float) -> bool:
    """Wait until no process holds the volume's lock."""
    deadline = time.monotonic() + timeout
    fd = os.open(voldir / LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
    finally:
        os.close(fd)


def unmount(mountpoint: str | os.PathLike, timeout: float = 60.0) -> None:
    """Unmount a snapfs mount and wait until its daemon has closed the volume."""
    from .client import find_volume

    mountpoint = Path(mountpoint)
    if not os.path.ismount(mountpoint):
        raise err(errno.EINVAL, f"{mountpoint} is not a mount point")
    try:
        voldir = find_volume(mountpoint)
    except NotAVolume:
        raise NotAVolume(f"{mountpoint} is not a snapfs mount") from None
    r = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True, text=True)
    if r.returncode != 0:
        msg = (r.stderr.strip().splitlines() or ["fusermount3 failed"])[-1]
        code = errno.EBUSY if "busy" in msg.lower() else errno.EIO
        raise SnapfsError(f"cannot unmount {mountpoint}: {msg}", code)
    if not _wait_released(voldir, timeout):
        raise VolumeBusy(f"unmounted {mountpoint}, but its daemon still holds {voldir} after {timeout:.0f} s")
