"""The NDMP error family.

Every failure a request can meet is an :class:`NdmpError` carrying the
``ndmp_error`` code the reply gives the DMA (:class:`~ndmp.protocol.Error`),
so a service raises and the session answers, with the message in the log.
:class:`ProtocolError` is different: the byte stream itself is broken (a
truncated or oversized fragment, a header that cannot be read), so nothing
can be answered and the session ends.  :class:`ConfigError` is a bad
command line or configuration file.  :class:`EngineError` is the dump
engine failing under a running DATA operation (the data service halts
INTERNAL_ERROR and tells the DMA why); :class:`EngineCancelled` is the
operation stopped from outside (abort, a vanished DMA).
"""

from __future__ import annotations

from snapdump.errors import SnapdumpError

from .protocol import Error


class NdmpError(SnapdumpError):
    """A request failed; ``code`` is the NDMP error the reply carries."""

    code: Error = Error.UNDEFINED_ERR

    def __init__(self, message: str, code: Error | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotSupported(NdmpError):
    code = Error.NOT_SUPPORTED_ERR


class NotAuthorized(NdmpError):
    code = Error.NOT_AUTHORIZED_ERR


class IllegalArgs(NdmpError):
    code = Error.ILLEGAL_ARGS_ERR


class IllegalState(NdmpError):
    code = Error.ILLEGAL_STATE_ERR


class DevNotOpen(NdmpError):
    code = Error.DEV_NOT_OPEN_ERR


class PermissionDenied(NdmpError):
    code = Error.PERMISSION_ERR


class XdrError(NdmpError):
    """A body that does not follow its layout."""

    code = Error.XDR_DECODE_ERR


class ConnectFailed(NdmpError):
    code = Error.CONNECT_ERR


class SessionLimit(NdmpError):
    """All dump and restore session slots are held (:mod:`dumptool.sessions`):
    NO_MEM_ERR, as the limit is the machine's memory's (the DMA may retry later)."""

    code = Error.NO_MEM_ERR


class ProtocolError(NdmpError):
    """The record stream is broken; the session cannot go on."""


class ConfigError(NdmpError):
    """A bad command line or configuration file."""


class EngineError(NdmpError):
    """The dump engine could not do what was asked."""


class EngineCancelled(EngineError):
    """The engine's work was stopped from outside (abort, a vanished peer)."""
