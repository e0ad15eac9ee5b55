"""An NDMP version 4 server: TAPE and MOVER services over loopback shelves.

The public surface: :func:`~ndmp.server.serve` and :func:`~ndmp.server.bind`
(a listening server), :class:`~ndmp.config.ServerConfig`,
:class:`~ndmp.session.ServerContext`, and the :class:`~ndmp.errors.NdmpError`
family.  ``pyndmpd`` (:mod:`ndmp.cli`) is the command.
"""

from .config import ServerConfig
from .errors import ConfigError, NdmpError, ProtocolError

__all__ = ["ConfigError", "NdmpError", "ProtocolError", "ServerConfig"]
