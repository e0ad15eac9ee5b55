"""pyndmpd: the NDMP v4 server.

::

    pyndmpd [--listen HOST:PORT] --shelf SHELF... [--volume PATH...]
            [--dumpdates FILE] [--spool DIR] [--config FILE] [--foreground]
            [--pid-file FILE] [--log-file FILE] [-v]

Serves the drives of each shelf (``SHELF/nst0``, ``SHELF/st0``, ...) and
describes each volume (CONFIG_GET_FS_INFO); backups and restores (DATA)
work only inside the volumes.  In the foreground it logs to
stderr; otherwise it becomes a daemon once the port is bound, writes its pid
file and logs to ``--log-file`` (or syslog).  SIGTERM or SIGINT stop it.
Errors before serving: one line on stderr and status 1; usage errors 2.
"""

from __future__ import annotations

import argparse
import errno
import logging
import logging.handlers
import os
import signal
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Sequence

import trio

from snapdump.processes import process_alive, process_start, started_at
from snapdump.exits import CommandFailed, run

from .config import ServerConfig, check_volumes, load_config_file, parse_listen
from .drive import ServedDrives
from .engine import load_engine
from .protocol import NDMP_PORT
from .server import bind, serve
from .session import ServerContext

PROG = "pyndmpd"
DEFAULT_PID_FILE = "/run/pyndmpd.pid"
#: How much later than its pid file was written a process may have started and still be
#: the daemon that wrote it (the boot time is whole seconds; the daemon starts first).
_PID_FILE_SLACK = 2.0
EXIT_FAILURE = 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="NDMP v4 server for loopback tape shelves.")
    p.add_argument("--version", action="version", version=f"%(prog)s {metadata.version('snapdump')}")
    p.add_argument("--listen", default=f"0.0.0.0:{NDMP_PORT}", metavar="HOST:PORT",
                   help=f"address to serve on (default 0.0.0.0:{NDMP_PORT})")
    p.add_argument("--shelf", action="append", default=[], metavar="SHELF",
                   help="a shelf whose drives are served as SHELF/nstN and SHELF/stN (repeatable)")
    p.add_argument("--volume", action="append", default=[], metavar="PATH",
                   help="a volume (snapfs mount or directory) to describe and serve (repeatable)")
    p.add_argument("--dumpdates", metavar="FILE",
                   help="the dumpdates file backups with UPDATE=y record their levels in (default: dump's)")
    p.add_argument("--spool", metavar="DIR",
                   help="where backups and recovers keep their spool files (default: the temporary directory)")
    p.add_argument("--config", metavar="FILE", help="TOML file with users and accepted auth types")
    p.add_argument("--foreground", action="store_true", help="stay in the foreground, logging to stderr")
    p.add_argument("--pid-file", default=DEFAULT_PID_FILE, metavar="FILE",
                   help=f"the daemon's pid file (default {DEFAULT_PID_FILE})")
    p.add_argument("--log-file", metavar="FILE", help="the daemon's log (default: syslog)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request's failure and debug lines")
    return p


def _configure(args: argparse.Namespace) -> tuple[ServerContext, str, int]:
    if not args.shelf and not args.volume:
        raise CommandFailed("nothing to serve: give at least one --shelf (or --volume)")
    config = ServerConfig(shelves=[Path(s) for s in args.shelf])
    if args.config:
        load_config_file(Path(args.config), config)
    config.volumes = check_volumes([Path(v) for v in args.volume])
    if args.dumpdates:
        config.dumpdates = os.path.abspath(args.dumpdates)
    if args.spool:
        if not os.path.isdir(args.spool):
            raise CommandFailed(f"--spool {args.spool}: not a directory")
        config.spool = os.path.abspath(args.spool)
    drives = ServedDrives(config.shelves)
    host, port = parse_listen(args.listen)
    return ServerContext(config, drives), host, port


def _log_handler(args: argparse.Namespace) -> logging.Handler:
    if args.foreground:
        return logging.StreamHandler(sys.stderr)
    if args.log_file:
        return logging.FileHandler(args.log_file)
    if os.path.exists("/dev/log"):
        return logging.handlers.SysLogHandler("/dev/log")
    return logging.NullHandler()


def _setup_logging(args: argparse.Namespace) -> None:
    handler = _log_handler(args)
    fmt = "%(asctime)s pyndmpd[%(process)d] %(levelname)s %(message)s" if not isinstance(
        handler, logging.handlers.SysLogHandler) else "pyndmpd[%(process)d]: %(levelname)s %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger("ndmp")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    root.propagate = False


def _check_pid_file(path: Path) -> None:
    """Refuse to start while the pid file names a live process that had
    started by the time the file was written.  The file holds the pid alone
    (as ``kill $(cat FILE)``, start-stop-daemon and systemd read it); a
    process that took the number over later is another one, not a daemon."""
    try:
        pid = int(path.read_text().split()[0])
        written = path.stat().st_mtime
    except (OSError, ValueError, IndexError):
        return
    start = process_start(pid)  # None without /proc: the pid alone decides
    if not process_alive(pid, start):
        return
    began = started_at(start) if start is not None else None
    if began is not None and began > written + _PID_FILE_SLACK:
        return  # the pid was reused after the file was written
    raise CommandFailed(f"{path}: pyndmpd is already running as pid {pid} (or remove the stale pid file)")


def _daemonize(pid_file: Path) -> None:
    """Double fork; the parent returns only in the daemon, after the pid file is written."""
    read_fd, write_fd = os.pipe()
    if os.fork():
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as r:
            word = r.read()
        if word != b"ok":
            sys.stderr.write(word.decode(errors="replace") or f"{PROG}: the daemon died while starting\n")
            os._exit(EXIT_FAILURE)
        os._exit(0)
    os.close(read_fd)
    os.setsid()
    if os.fork():
        os._exit(0)
    try:
        pid_file.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        os.write(write_fd, f"{PROG}: {pid_file}: {exc.strerror}\n".encode())
        os._exit(EXIT_FAILURE)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.write(write_fd, b"ok")
    os.close(write_fd)


async def _run(sock: socket.socket, context: ServerContext) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, sock, context)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # (one held back comes now)
            async for signum in signals:
                logging.getLogger("ndmp.server").info("stopping (%s)", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, lambda: _pyndmpd(_parser().parse_args(argv)))


def _pyndmpd(args: argparse.Namespace) -> int:
    context, host, port = _configure(args)
    load_engine()
    pid_file = Path(os.path.abspath(args.pid_file))
    if not args.foreground:
        _check_pid_file(pid_file)
    try:
        sock = bind(host, port)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise CommandFailed(f"cannot listen on {host}:{port}: {reason}") from None
    try:
        # Before daemonizing: a log file that cannot be opened is said here,
        # and it exists once this command returns.
        _setup_logging(args)
    except OSError as exc:
        sock.close()
        raise CommandFailed(f"{args.log_file}: {exc.strerror}") from None
    # A SIGTERM before the server listens for it (trio's receiver) waits, held back,
    # until it does, and then stops it the same way, its pid file removed (a handler
    # raising KeyboardInterrupt instead was lost when it struck inside trio's own code:
    # the daemon served on).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        if not args.foreground:
            _daemonize(pid_file)
        trio.run(_run, sock, context)
    except KeyboardInterrupt:
        pass
    finally:
        if not args.foreground:
            try:
                pid_file.unlink()
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
