"""A tape drive on another machine, reached through rmt.

:class:`RemoteDrive` runs ``$RSH host [-l user] $RMT`` (``ssh`` and
``/etc/rmt`` by default, as dump reads them) and speaks the rmt protocol to
the server at the other end: records move with ``R``/``W``, every positioning
and medium operation is an ``I`` (MTIOCTOP with Linux op numbers), status is
``S``.  An ``E`` reply becomes the :class:`~tapelib.errors.TapeError`
subclass for its errno, so a caller sees the same errors as on a local drive.

Servers: any rmt that keeps Linux numbering and answers ``S`` with a Linux
``struct mtget`` (pyrmt, Linux dump's rmt).  ``status`` sends ``S`` without
a newline, which BSD-style servers need; GNU rmt reads whole lines and would
wait, so ``status`` does not work against GNU rmt.  ``tell`` uses pyrmt's
``I23`` (MTTELL) answer; other servers refuse it.
"""

from __future__ import annotations

import errno as _errno
import os
import shlex
import subprocess

from ..drive import MtopDrive, TapeStatus
from ..errors import InvalidArgument, NoSuchDevice, TapeError, TapeIOError, error_for_errno
from ..linux_st import unpack_mtget
from ..mtio import MtOp
from . import protocol as p

__all__ = ["DEFAULT_RMT", "DEFAULT_RSH", "RemoteDrive", "split_remote_name"]

DEFAULT_RSH = "ssh"
DEFAULT_RMT = "/etc/rmt"
#: How long ``close`` waits for the remote shell to exit once the session ends.
CLOSE_TIMEOUT = 30.0


def split_remote_name(name: str) -> tuple[str | None, str, str]:
    """``[user@]host:device`` as ``(user, host, device)``; the first ``:``
    ends the host, and an empty user (``@host:``) counts as none."""
    where, colon, device = name.partition(":")
    user, at, host = where.rpartition("@") if "@" in where else ("", "", where)
    if not colon or not host or not device:
        raise NoSuchDevice(f"{name}: not a remote tape name (use [user@]host:device)")
    if "\n" in device:
        raise NoSuchDevice(f"{name!r}: a device name cannot contain a newline")
    return (user or None), host, device


class RemoteDrive(MtopDrive):
    """A drive opened through an rmt server for the life of this object.

    ``rsh`` and ``rmt`` override ``$RSH`` and ``$RMT``; ``rsh`` may carry
    arguments (``"ssh -p 2222"``).
    """

    def __init__(self, name: str, writable: bool = False, rsh: str | None = None,
                 rmt: str | None = None) -> None:
        self.name = name
        self.writable = writable
        user, host, device = split_remote_name(name)
        argv = shlex.split(rsh or os.environ.get("RSH") or DEFAULT_RSH)
        argv.append(host)
        if user:
            argv += ["-l", user]
        argv.append(rmt or os.environ.get("RMT") or DEFAULT_RMT)
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except OSError as exc:
            raise NoSuchDevice(f"{name}: cannot run {argv[0]}: {exc.strerror}") from None
        mode = p.OpenMode(p.O_RDWR if writable else p.O_RDONLY)
        try:
            self._call(b"O%s\n%s\n" % (os.fsencode(device), mode.line().encode()))
        except BaseException:
            self._hang_up()
            raise

    # -- wire ----------------------------------------------------------------
    def _send(self, request: bytes, data: bytes | memoryview = b"") -> None:
        proc = self._proc
        if proc is None:
            raise TapeError(f"{self.name}: drive is closed", errno=_errno.EBADF)
        try:
            assert proc.stdin is not None
            proc.stdin.write(request)
            if data:
                proc.stdin.write(data)
            proc.stdin.flush()
        except (BrokenPipeError, ConnectionResetError):
            self._hang_up()
            raise TapeIOError(f"{self.name}: lost connection to the remote tape server") from None

    def _reply(self) -> int:
        """The value of an ``A`` reply; an ``E``/``F`` reply raises its error."""
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        line = out.readline(p.MAX_REPLY_LINE).lstrip()
        if not line.endswith(b"\n"):
            self._hang_up()
            raise TapeIOError(f"{self.name}: lost connection to the remote tape server")
        kind, text = line[:1], line[1:].strip()
        if kind in (p.REPLY_ERROR, p.REPLY_FATAL):
            message = out.readline(4096).decode("utf-8", "replace").strip()
            try:
                code = int(text)
            except ValueError:
                code = 0
            if code <= 0:
                code = _errno.EIO
            if kind == p.REPLY_FATAL:
                self._hang_up()
            raise error_for_errno(code, f"{self.name}: {message or os.strerror(code)}")
        try:
            if kind != p.REPLY_OK:
                raise ValueError
            return int(text)
        except ValueError:
            self._hang_up()
            raise TapeIOError(f"{self.name}: garbled reply from the remote tape server: {line!r}") from None

    def _call(self, request: bytes, data: bytes | memoryview = b"") -> int:
        self._send(request, data)
        return self._reply()

    def _body(self, count: int) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        data = self._proc.stdout.read(count)
        if len(data) != count:
            self._hang_up()
            raise TapeIOError(f"{self.name}: lost connection to the remote tape server")
        return data

    def _hang_up(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            proc.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # -- TapeDrive ---------------------------------------------------------
    def mtop(self, op: int, count: int = 1) -> None:
        """Send MTIOCTOP as ``I`` with ``op`` and ``count`` unchanged: the
        remote drive alone decides what they mean."""
        self._ioctl(op, count)

    def _ioctl(self, op: int, count: int) -> int:
        for what, value in (("operation", op), ("count", count)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidArgument(f"{self.name}: tape {what} {value!r} is not an integer")
        return self._call(b"I%d\n%d\n" % (op, count))

    def read(self, size: int) -> bytes:
        length = self._call(b"R%d\n" % size)
        if length > size or length < 0:
            self._hang_up()
            raise TapeIOError(f"{self.name}: remote server sent {length} bytes for a {size}-byte read")
        return self._body(length) if length else b""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        return self._call(b"W%d\n" % len(view), view)

    def tell(self) -> int:
        return self._ioctl(MtOp.MTTELL, 1)

    def status(self) -> TapeStatus:
        length = self._call(p.CMD_STATUS)
        try:
            return unpack_mtget(self._body(length))
        except InvalidArgument as exc:
            raise TapeIOError(f"{self.name}: remote status does not fit: {exc.message}") from None

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            self._call(b"C\n")
        finally:
            self._hang_up()

    def __repr__(self) -> str:
        state = "closed" if self._proc is None else ("read-write" if self.writable else "read-only")
        return f"<RemoteDrive {self.name} {state}>"
