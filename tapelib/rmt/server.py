"""The rmt server: a tape drive (or a plain file) served over two byte streams.

:class:`RmtServer` reads commands from one stream and answers on the other,
as ``/etc/rmt`` does when GNU tar or dump reach it through ``rsh``/``ssh``.
An opened name that is a tape device (:func:`~tapelib.device.is_tape_device`:
a shelf drive such as ``SHELF/nst0``, or ``/dev/nst0``) is served through
:class:`~tapelib.drive.TapeDrive`, so records, filemarks and errno values are
those of Linux st; any other name is opened as a plain file.

What a client may rely on, beyond the common protocol:

* ``C`` closes the device and the server keeps running, as the BSD and dump
  servers do (dump reopens the tape on the same connection after ``C``).
* ``L`` reads the offset first, then whence (the order tar <= 1.34 and dump
  send).  On a tape drive it fails with ESPIPE, so tar falls back to its
  tape ways (MTBSR) or warns, instead of trusting a made-up offset.
* ``S`` may come with or without its newline: blank lines between commands
  are skipped.  The reply body is the native 48-byte ``struct mtget``.
* ``I`` takes Linux op numbers; after the version probe ``I-1`` (answered
  ``A1``) ops 0-10 are BSD numbers, as the extended protocol says.  On a
  drive ``I23`` (MTTELL, which st itself refuses) answers the logical block
  address, so :class:`~tapelib.rmt.client.RemoteDrive` can offer ``tell``.
* A ``W`` of more than 64 MiB (:data:`MAX_RECORD`) gets ``E22`` and its
  bytes are read and dropped; an ``R`` of more serves 64 MiB at most.
* An unknown command gets ``E22`` and ends the session (:class:`ProtocolError`),
  as GNU rmt does: the server cannot know how many argument bytes follow, so
  going on would read data as commands.
* At end of input the device is closed as a process exit would close it: a
  filemark is written after writing, and a shelf drive saves its position.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import BinaryIO, Callable, Protocol, TextIO

from ..device import is_remote, is_tape_device, open_device
from ..devicefile import shelf_file_refusal
from ..drive import TapeDrive, TapeStatus
from ..errors import InvalidArgument, TapeError
from ..linux_st import mtget_fields, pack_mtget
from ..mtio import MtOp
from . import protocol as p

__all__ = ["ProtocolError", "RmtServer"]

#: Largest ``R`` a server reads in one go (a bigger count is served up to this).
MAX_READ = 64 * 1024 * 1024
#: Largest ``W`` record accepted, for a drive or a file: a bigger one is answered
#: EINVAL and its bytes drained (the BSD and GNU servers hold a record in
#: memory, and end the session when it cannot be had).
MAX_RECORD = 64 * 1024 * 1024

# ``s`` letters and the struct mtget field each one reports.
_STATUS_LETTERS = {
    b"T": "mt_type", b"D": "mt_dsreg", b"E": "mt_erreg", b"R": "mt_resid",
    b"F": "mt_fileno", b"B": "mt_blkno", b"f": "mt_gstat",
}

_BLANK = frozenset(b"\n\r \t")


class ProtocolError(Exception):
    """The client broke the protocol (or vanished); the session cannot go on."""


def _os_error(what: str, exc: OSError) -> TapeError:
    code = exc.errno or _errno.EIO
    return TapeError(f"{what}: {os.strerror(code)}", errno=code)


def _not_a_tape(name: str) -> TapeError:
    return TapeError(f"{name}: {os.strerror(_errno.ENOTTY)}", errno=_errno.ENOTTY)


class _Target(Protocol):
    """What an ``O`` opened: a tape drive or a plain file."""

    name: str

    def read(self, size: int) -> bytes: ...
    def write(self, data: bytes) -> int: ...
    def seek(self, offset: int, whence: int) -> int: ...
    def ioctl(self, op: int, count: int) -> int: ...
    def status(self) -> TapeStatus: ...
    def close(self) -> None: ...


class _DriveTarget:
    def __init__(self, drive: TapeDrive) -> None:
        self.drive = drive
        self.name = drive.name

    def read(self, size: int) -> bytes:
        return self.drive.read(size)

    def write(self, data: bytes) -> int:
        return self.drive.write(data)

    def seek(self, offset: int, whence: int) -> int:
        if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
            raise InvalidArgument(f"{self.name}: bad whence {whence}")
        raise TapeError(f"{self.name}: a tape drive cannot seek by byte offset "
                        "(use MTIOCTOP positioning)", errno=_errno.ESPIPE)

    def ioctl(self, op: int, count: int) -> int:
        if op == MtOp.MTTELL:
            return self.drive.tell()
        self.drive.mtop(op, count)
        return count

    def status(self) -> TapeStatus:
        return self.drive.status()

    def close(self) -> None:
        self.drive.close()


class _FileTarget:
    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self.fd = fd

    def read(self, size: int) -> bytes:
        if size < 0:
            raise InvalidArgument(f"{self.name}: negative read size {size}")
        try:
            return os.read(self.fd, min(size, MAX_READ))
        except OSError as exc:
            raise _os_error(self.name, exc) from None

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        done = 0
        try:
            while done < len(view):
                done += os.write(self.fd, view[done:])
        except OSError as exc:
            if done:
                return done
            raise _os_error(self.name, exc) from None
        return done

    def seek(self, offset: int, whence: int) -> int:
        try:
            return os.lseek(self.fd, offset, whence)
        except (OSError, OverflowError) as exc:
            if isinstance(exc, OverflowError):
                raise InvalidArgument(f"{self.name}: offset {offset} out of range") from None
            raise _os_error(self.name, exc) from None

    def ioctl(self, op: int, count: int) -> int:
        raise _not_a_tape(self.name)

    def status(self) -> TapeStatus:
        raise _not_a_tape(self.name)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError as exc:
            raise _os_error(self.name, exc) from None


class RmtServer:
    """One rmt session: commands from ``rfile``, replies to ``wfile``.

    ``log`` (if given) gets one line per command and one per reply.
    """

    def __init__(self, rfile: BinaryIO, wfile: BinaryIO, log: TextIO | None = None) -> None:
        self._in = rfile
        self._out = wfile
        self._log = log
        self._target: _Target | None = None
        self._version = 0

    # -- the loop ----------------------------------------------------------
    def serve(self) -> None:
        """Answer commands until end of input, then close the device.

        Raises :class:`ProtocolError` when the client breaks the protocol, and
        the :class:`~tapelib.errors.TapeError` of the final close if closing
        the device at end of input fails (there is nobody left to tell).  The
        device is closed in every case.
        """
        try:
            while True:
                letter = self._in.read(1)
                if not letter:
                    break
                if letter[0] in _BLANK:
                    continue
                try:
                    self._dispatch(letter)
                except (BrokenPipeError, ConnectionResetError):
                    raise ProtocolError("lost connection to the client") from None
        except BaseException:
            try:
                self._close_target()
            except TapeError as exc:
                self._note(f"closing after failure: {exc.message}")
            raise
        if self._target is not None:
            self._note(f"end of input: closing {self._target.name}")
            self._close_target()

    def _dispatch(self, letter: bytes) -> None:
        handler = self._HANDLERS.get(letter)
        if handler is None:
            self._note(f"unknown command {letter!r}")
            self._reply_error(_errno.EINVAL, "Garbage command")
            raise ProtocolError(f"unknown command {letter!r}: garbage on input, giving up")
        handler(self)

    # -- wire helpers --------------------------------------------------------
    def _note(self, text: str) -> None:
        if self._log is not None:
            self._log.write(text + "\n")
            self._log.flush()

    def _line(self) -> str:
        raw = self._in.readline(p.MAX_LINE)
        if not raw.endswith(b"\n"):
            if len(raw) >= p.MAX_LINE:
                raise ProtocolError(f"argument line longer than {p.MAX_LINE} bytes")
            raise ProtocolError("premature end of input in a command's arguments")
        return os.fsdecode(raw[:-1].rstrip(b"\r"))

    def _exactly(self, count: int) -> bytes:
        chunks = []
        left = count
        while left:
            chunk = self._in.read(left)
            if not chunk:
                raise ProtocolError(f"premature end of input: {count - left} of {count} data bytes")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _drain(self, count: int) -> None:
        left = count
        while left:
            chunk = self._in.read(min(left, 1 << 20))
            if not chunk:
                raise ProtocolError("premature end of input in write data")
            left -= len(chunk)

    def _reply(self, value: int, body: bytes = b"") -> None:
        self._note(f"A{value}" + (f" +{len(body)} bytes" if body else ""))
        self._out.write(b"A%d\n" % value)
        if body:
            self._out.write(body)
        self._out.flush()

    def _reply_error(self, code: int, message: str) -> None:
        text = " ".join(message.split())[: p.MAX_MESSAGE] or os.strerror(code) or "error"
        self._note(f"E{code} {text}")
        self._out.write(b"E%d\n%s\n" % (code, text.encode("utf-8", "replace")))
        self._out.flush()

    def _fail(self, exc: TapeError) -> None:
        self._reply_error(exc.errno, exc.message)

    def _int(self, text: str, what: str) -> int:
        try:
            return int(text.strip())
        except ValueError:
            raise InvalidArgument(f"bad {what} {text!r}") from None

    def _arguments(self, letter: str, count: int) -> list[str]:
        """Read a command's ``count`` argument lines and log the command."""
        texts = [self._line() for _ in range(count)]
        self._note(" ".join([letter, *texts]))
        return texts

    def _answer(self, action: Callable[[], int | tuple[int, bytes]]) -> None:
        """Run a command: its value (and body) is the reply, a
        :class:`~tapelib.errors.TapeError` the error reply."""
        try:
            result = action()
        except TapeError as exc:
            self._fail(exc)
            return
        value, body = result if isinstance(result, tuple) else (result, b"")
        self._reply(value, body)

    def _open_target(self) -> _Target:
        if self._target is None:
            raise TapeError("no device is open", errno=_errno.EBADF)
        return self._target

    def _close_target(self) -> None:
        target, self._target = self._target, None
        if target is not None:
            target.close()

    # -- commands ----------------------------------------------------------
    def _cmd_open(self) -> None:
        name, mode_line = self._arguments("O", 2)
        self._answer(lambda: self._open(name, mode_line))

    def _open(self, name: str, mode_line: str) -> int:
        try:
            self._close_target()
            mode = p.OpenMode.parse(mode_line)
            if not is_remote(name) and is_tape_device(name):
                self._target = _DriveTarget(open_device(name, writable=mode.writable))
            else:
                refusal = shelf_file_refusal(name) if mode.writable or mode.truncate else None
                if refusal is not None:  # a cartridge written in place would escape its drive's checks
                    raise TapeError(refusal, errno=_errno.EPERM)  # it names the file: room for the drive
                self._target = _FileTarget(name, os.open(name, mode.os_flags() | os.O_CLOEXEC, 0o666))
        except OSError as exc:  # the file, or a shelf's state files, say, unreadable
            raise _os_error(name, exc) from None
        return 0

    def _cmd_close(self) -> None:
        self._line()  # BSD's C takes a device argument, and ignores it
        self._note("C")
        self._answer(self._close_open_target)

    def _close_open_target(self) -> int:
        self._open_target()
        self._close_target()
        return 0

    def _cmd_lseek(self) -> None:
        offset, whence = self._arguments("L", 2)
        self._answer(lambda: self._open_target().seek(self._int(offset, "offset"), self._int(whence, "whence")))

    def _cmd_write(self) -> None:
        count_text = self._line()
        self._note(f"W {count_text}")
        try:
            count = int(count_text.strip())
        except ValueError:
            self._reply_error(_errno.EINVAL, f"bad byte count {count_text!r}")
            raise ProtocolError(f"W with a bad byte count {count_text!r}") from None
        if count < 0:
            self._reply_error(_errno.EINVAL, f"negative byte count {count}")
            raise ProtocolError(f"W with a negative byte count {count}")
        target = self._target
        if target is None or count > MAX_RECORD:
            # answered before the bytes are drained: a client whose data stops short hears why
            if target is None:
                self._reply_error(_errno.EBADF, "no device is open")
            else:
                self._reply_error(_errno.EINVAL, f"record of {count} bytes is larger than {MAX_RECORD}")
            self._drain(count)
            return
        data = self._exactly(count)
        self._answer(lambda: target.write(data))

    def _cmd_read(self) -> None:
        (count,) = self._arguments("R", 1)
        self._answer(lambda: self._read(self._int(count, "byte count")))

    def _read(self, count: int) -> tuple[int, bytes]:
        if count < 0:
            raise InvalidArgument(f"negative byte count {count}")
        data = self._open_target().read(min(count, MAX_READ))
        return len(data), data

    def _cmd_ioctl(self) -> None:
        op, count = self._arguments("I", 2)
        self._answer(lambda: self._ioctl(self._int(op, "operation"), self._int(count, "count")))

    def _ioctl(self, op: int, count: int) -> int:
        if op == p.RMTIVERSION:
            self._version = p.RMT_EXTENDED_VERSION
            return p.RMT_EXTENDED_VERSION
        if self._version >= p.RMT_EXTENDED_VERSION and op in p.BSD_MTOPS:
            op = p.BSD_MTOPS[op]
        return self._open_target().ioctl(op, count)

    def _cmd_ext_ioctl(self) -> None:
        op, count = self._arguments("i", 2)
        self._answer(lambda: self._ext_ioctl(self._int(op, "operation"), self._int(count, "count")))

    def _ext_ioctl(self, op: int, count: int) -> int:
        target = self._open_target()
        if op == p.RMTI_RETEN:
            target.ioctl(MtOp.MTRETEN, count)
        elif op == p.RMTI_ERASE:
            target.ioctl(MtOp.MTERASE, count)
        elif op == p.RMTI_EOM:
            target.ioctl(MtOp.MTEOM, count)
        elif op == p.RMTI_NBSF:
            # Back over count filemarks to the start of that file: bsfm count+1.
            target.ioctl(MtOp.MTBSFM, count + 1)
        else:
            # RMTI_CACHE and RMTI_NOCACHE have no Linux equivalent.
            raise InvalidArgument(f"extended tape operation {op} is not supported here")
        return count

    def _cmd_status(self) -> None:
        self._note("S")
        self._answer(self._status)

    def _status(self) -> tuple[int, bytes]:
        body = pack_mtget(self._open_target().status())
        return len(body), body

    def _cmd_ext_status(self) -> None:
        letter = self._in.read(1)
        if not letter:
            raise ProtocolError("premature end of input after 's'")
        self._note(f"s {letter.decode('latin-1')}")
        self._answer(lambda: self._status_field(letter))

    def _status_field(self, letter: bytes) -> int:
        status = self._open_target().status()
        if letter == b"b":
            return 0  # mt_bf: no such field on Linux; dump's rmt says 0 too
        if letter in _STATUS_LETTERS:
            return getattr(mtget_fields(status), _STATUS_LETTERS[letter])
        raise InvalidArgument(f"unknown status field {letter!r}")

    def _cmd_version(self) -> None:
        self._line()
        self._note("V")
        self._reply(p.RMT_VERSION_REPLY)

    _HANDLERS = {
        p.CMD_OPEN: _cmd_open,
        p.CMD_CLOSE: _cmd_close,
        p.CMD_LSEEK: _cmd_lseek,
        p.CMD_WRITE: _cmd_write,
        p.CMD_READ: _cmd_read,
        p.CMD_IOCTL: _cmd_ioctl,
        p.CMD_EXT_IOCTL: _cmd_ext_ioctl,
        p.CMD_STATUS: _cmd_status,
        p.CMD_EXT_STATUS: _cmd_ext_status,
        p.CMD_VERSION: _cmd_version,
    }
