"""The dump engine's error family.

Every failure a user can cause (a damaged or foreign image, a value the dump
format cannot hold, ...) is a :class:`DumpError` whose message names the
thing and says what to do, so that a CLI can print it as one line on stderr.
Programming mistakes (wrong types, impossible arguments from our own code)
stay ``TypeError``/``ValueError``.

The family is closed at the engine's entry points (:func:`engine_entry` on
``Dump.steps``, ``Restore.extract``, ...): a tape's error or an ``OSError``
the engine did not turn into a message of its own leaves it as a
:class:`MediumError` or a :class:`DumpError` with the same words, so a
caller (pydump, pyrestore, the NDMP data service) handles one family.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from snapdump.errors import ErrnoError, SnapdumpError, os_error_text


class DumpError(SnapdumpError):
    """A dump or restore failed for a reason the user can act on."""


class FormatError(DumpError):
    """Bytes are not a valid dump record: not a dump image, or damaged."""


class ChecksumError(FormatError):
    """A header block has the dump magic but a wrong checksum (a damaged block)."""


class UnsupportedFormatError(FormatError):
    """A recognised but unsupported image variant (old 4.3BSD or FreeBSD UFS2 headers)."""


class FormatLimitError(DumpError):
    """A value cannot be written in the dump format (too long, too large, out of range).

    Raised by the writer side of :mod:`dumptool.format`; the dump engine decides
    whether to skip the file, truncate, or stop.
    """


class MediumError(DumpError):
    """Reading or writing the dump medium (tape, file, pipe) failed.

    The message names the device; ``errno`` is the system's (or Linux st's)
    error number when one is known, else ``None``.
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class DumpDatesError(DumpError):
    """The dumpdates file (or its inode-map sidecar) cannot be read or written."""


class NoBaseDumpError(DumpDatesError):
    """An incremental dump was asked for but no lower-level dump is recorded."""


class SessionError(DumpError):
    """A dump or restore session cannot start: its state folder is unusable or the limit is set wrong."""


class SessionLimitError(SessionError):
    """All session slots are held: ``running`` sessions run, ``limit`` may."""

    def __init__(self, message: str, running: int, limit: int) -> None:
        super().__init__(message)
        self.running = running
        self.limit = limit


_F = TypeVar("_F", bound=Callable)


@contextmanager
def engine_errors() -> Iterator[None]:
    """Turn what escapes the block into the family: a tape's (or any
    errno-carrying) error into a :class:`MediumError` with its words and
    errno, another ``OSError`` into a :class:`DumpError` saying ``FILE:
    reason``.  A ``BrokenPipeError`` goes on as it is: whoever read the
    listing went away, which the command answers as every command does."""
    try:
        yield
    except DumpError:
        raise
    except ErrnoError as exc:
        raise MediumError(exc.message, exc.errno) from exc
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise DumpError(os_error_text(exc)) from exc


def engine_entry(method: _F) -> _F:
    """Decorate an entry point of the engine (a function or a generator)
    so that only this family's errors leave it (see :func:`engine_errors`)."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stepping(*args, **kwargs):
            with engine_errors():
                return (yield from method(*args, **kwargs))
        return stepping  # type: ignore[return-value]

    @functools.wraps(method)
    def calling(*args, **kwargs):
        with engine_errors():
            return method(*args, **kwargs)
    return calling  # type: ignore[return-value]


class RestartError(DumpError):
    """An interrupted dump cannot be restarted (the message says which condition fails)."""
