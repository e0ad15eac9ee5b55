"""The rmt remote tape protocol, both ends.

:class:`RmtServer` serves a tape drive or a plain file on a pair of byte
streams (the ``pyrmt`` command runs it on stdin/stdout, for GNU tar and dump
to reach through ``rsh``/``ssh``); :class:`RemoteDrive` is a
:class:`~tapelib.drive.TapeDrive` on the far side of such a server.
"""

from .client import RemoteDrive
from .protocol import OpenMode
from .server import ProtocolError, RmtServer

__all__ = ["OpenMode", "ProtocolError", "RemoteDrive", "RmtServer"]
