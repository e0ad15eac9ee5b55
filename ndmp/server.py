"""The NDMP server: a TCP listener and one :class:`~ndmp.session.Session`
per connection.  A session that fails takes only itself down."""

from __future__ import annotations

import logging
import socket

import trio

from .session import ServerContext, Session

_log = logging.getLogger("ndmp.server")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (bound before the server starts or daemonizes,
    so a port in use is the caller's error, said at once)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(sock: socket.socket, context: ServerContext,
                task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve NDMP on a bound, listening socket until cancelled."""
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    port = sock.getsockname()[1]
    _log.info("serving NDMP v4 on %s port %d", sock.getsockname()[0], port)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            await Session(stream, context).run()
        except Exception:  # a bug in one session must not stop the others
            _log.exception("session failed")

    await trio.serve_listeners(handle, [listener], task_status=task_status)
