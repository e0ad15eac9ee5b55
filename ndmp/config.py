"""What a server serves and whom it lets in.

:class:`ServerConfig` gathers the command line (``--shelf``, ``--volume``)
and the configuration file (``--config``), a TOML file::

    # which CONNECT_CLIENT_AUTH types are accepted ("none" lets anyone in)
    auth = ["text", "md5"]

    [users]
    backup = "secret"

Without a file, or with a file that has no ``auth`` line, the server
accepts AUTH_NONE when no user is configured, and TEXT and MD5 when some
are.  A type that is not configured is refused with NOT_AUTHORIZED_ERR.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from snapdump.numerals import is_decimal

from .errors import ConfigError, IllegalArgs
from .protocol import NDMP_PORT, AuthType

_AUTH_NAMES = {"none": AuthType.NONE, "text": AuthType.TEXT, "md5": AuthType.MD5}


@dataclass
class ServerConfig:
    shelves: list[Path] = field(default_factory=list)
    volumes: list[Path] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)
    auth_types: list[AuthType] = field(default_factory=lambda: [AuthType.NONE])
    #: The dumpdates file backups record their levels in (None: dumptool's default).
    dumpdates: str | None = None
    #: Where backups and recovers keep their spool files (None: the system's temporary directory).
    spool: str | None = None

    def _served(self, real: str, what: str) -> None:
        if not self.volumes:
            raise IllegalArgs(f"{what}: this server serves no volume (pyndmpd --volume)")
        if not any(real == v or real.startswith(v.rstrip("/") + "/")
                   for v in (os.path.realpath(v) for v in self.volumes)):
            raise IllegalArgs(f"{what}: not inside a served volume")

    def check_path(self, path: str) -> str:
        """A FILESYSTEM to back up: an absolute directory inside a served
        ``--volume`` (the volume, a subtree or a snapshot of it)."""
        if not os.path.isabs(path):
            raise IllegalArgs(f"FILESYSTEM {path}: not an absolute path")
        real = os.path.realpath(path)
        if not os.path.isdir(real):
            raise IllegalArgs(f"FILESYSTEM {path}: no such directory")
        self._served(real, f"FILESYSTEM {path}")
        return real

    def check_destination(self, path: str) -> str:
        """Where a recover may write: an absolute path inside a served volume
        (its existing part resolved, so no symlink leads out)."""
        if not os.path.isabs(path):
            raise IllegalArgs(f"destination {path}: not an absolute path")
        path = os.path.normpath(path)
        head, tail = path, ""
        while not os.path.lexists(head) and head != "/":
            head, name = os.path.split(head)
            tail = os.path.join(name, tail) if tail else name
        real = os.path.join(os.path.realpath(head), tail) if tail else os.path.realpath(head)
        self._served(real, f"destination {path}")
        return real


def load_config_file(path: Path, config: ServerConfig) -> None:
    """Read users and auth types from ``path`` into ``config``."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file ({exc})") from None
    unknown = set(data) - {"auth", "users"}
    if unknown:
        raise ConfigError(f"{path}: unknown setting {sorted(unknown)[0]!r} (known: auth, users)")
    users = data.get("users", {})
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        raise ConfigError(f"{path}: [users] must map each user name to a password string")
    config.users = dict(users)
    if "auth" in data:
        auth = data["auth"]
        if not isinstance(auth, list) or not auth or not all(isinstance(a, str) for a in auth):
            raise ConfigError(f"{path}: auth must be a list such as [\"text\", \"md5\"]")
        types = []
        for name in auth:
            if name.lower() not in _AUTH_NAMES:
                raise ConfigError(f"{path}: unknown auth type {name!r} (use none, text, md5)")
            types.append(_AUTH_NAMES[name.lower()])
        config.auth_types = sorted(set(types))
    else:
        config.auth_types = [AuthType.TEXT, AuthType.MD5] if config.users else [AuthType.NONE]
    if (AuthType.TEXT in config.auth_types or AuthType.MD5 in config.auth_types) and not config.users:
        raise ConfigError(f"{path}: text or md5 authentication needs at least one user in [users]")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` or ``:PORT`` (default 0.0.0.0, port 10000;
    port 0 picks a free port, which the log's first line names)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, ""
    host = host.strip("[]") or "0.0.0.0"
    try:
        host.encode("idna")  # as the socket layer names a host: a byte that is no character names none
    except UnicodeError:
        raise ConfigError(f"--listen {text}: not a host name or address") from None
    if not port_text:
        return host, NDMP_PORT
    if not is_decimal(port_text) or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"--listen {text}: the port must be a number from 0 to 65535")
    return host, int(port_text)


def check_volumes(volumes: list[Path]) -> list[Path]:
    """The volumes as absolute paths; each must be a directory."""
    out = []
    for volume in volumes:
        path = Path(os.path.abspath(volume))
        if not path.is_dir():
            raise ConfigError(f"--volume {volume}: not a directory")
        out.append(path)
    return out
