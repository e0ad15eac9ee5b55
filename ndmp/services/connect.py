"""CONNECT: protocol version and authentication (NONE, TEXT, MD5)."""

from __future__ import annotations

import hashlib
import hmac

from ..errors import IllegalArgs, NotAuthorized, NotSupported
from ..messages import (
    ConnectClientAuthRequest,
    ConnectOpenRequest,
    ConnectServerAuthReply,
    ConnectServerAuthRequest,
    ErrorReply,
    NotifyConnectionStatus,
)
from ..protocol import NDMP_VERSION, AuthType, ConnectionStatus, Error, Message
from . import Service, answers

#: MD5 authentication uses at most this many bytes of the password.
MD5_PASSWORD_MAX = 32


def md5_digest(password: str, challenge: bytes) -> bytes:
    """NDMP's MD5 digest: MD5 over 128 bytes holding the password, the
    64-byte challenge ending where the second copy of the password starts,
    and the password again at the end."""
    p = password.encode("utf-8")[:MD5_PASSWORD_MAX]
    n = len(p)
    buf = bytearray(128)
    buf[0:n] = p
    buf[64 - n:128 - n] = challenge
    buf[128 - n:128] = p
    return hashlib.md5(buf).digest()


class ConnectService(Service):
    @answers(Message.CONNECT_OPEN)
    async def open(self, request: ConnectOpenRequest) -> ErrorReply:
        version = request.protocol_version
        if version != NDMP_VERSION:
            raise IllegalArgs(f"protocol version {version} is not supported (only {NDMP_VERSION})")
        self.session.version = version
        return ErrorReply(Error.NO_ERR)

    @answers(Message.CONNECT_CLIENT_AUTH)
    async def client_auth(self, request: ConnectClientAuthRequest) -> ErrorReply:
        session = self.session
        auth = request.auth_data
        allowed = session.context.config.auth_types
        if auth.auth_type not in (AuthType.NONE, AuthType.TEXT, AuthType.MD5):
            raise IllegalArgs(f"unknown authentication type {auth.auth_type}")
        kind = AuthType(auth.auth_type)
        if kind not in allowed:
            raise NotAuthorized(f"authentication {kind.name} is not enabled on this server "
                                f"(enabled: {', '.join(a.name for a in allowed)})")
        users = session.context.config.users
        if kind == AuthType.TEXT:
            assert auth.text is not None
            password = users.get(auth.text.auth_id)
            if password is None or not hmac.compare_digest(password.encode(), auth.text.auth_password.encode()):
                raise NotAuthorized(f"wrong user or password for {auth.text.auth_id!r} (TEXT)")
            who = auth.text.auth_id
        elif kind == AuthType.MD5:
            assert auth.md5 is not None
            challenge = session.md5_challenge
            if challenge is None:
                raise NotAuthorized("MD5 authentication without a challenge (CONFIG_GET_AUTH_ATTR first)")
            password = users.get(auth.md5.auth_id)
            if password is None or not hmac.compare_digest(md5_digest(password, challenge), auth.md5.auth_digest):
                raise NotAuthorized(f"wrong user or password for {auth.md5.auth_id!r} (MD5)")
            who = auth.md5.auth_id
        else:
            who = "anonymous"
        if session.version == 0:
            session.version = NDMP_VERSION
        session.authenticated = True
        session.log.info("%s: authenticated (%s, %s)", session.peer, kind.name, who)
        return ErrorReply(Error.NO_ERR)

    @answers(Message.CONNECT_CLOSE)
    async def close(self, _request: None) -> None:
        from ..session import EndSession

        await self.session.post(Message.NOTIFY_CONNECTION_STATUS, NotifyConnectionStatus(
            ConnectionStatus.SHUTDOWN, NDMP_VERSION, "CONNECT_CLOSE"))
        raise EndSession()

    @answers(Message.CONNECT_SERVER_AUTH)
    async def server_auth(self, _request: ConnectServerAuthRequest) -> ConnectServerAuthReply:
        raise NotSupported("CONNECT_SERVER_AUTH: this server does not authenticate itself")
