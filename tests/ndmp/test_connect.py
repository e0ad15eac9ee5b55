"""CONNECT: version, authentication rules, CONNECT_CLOSE."""

from __future__ import annotations

from pathlib import Path

from dma import Dma
from ndmp.messages import AuthAttrRequest, AuthData, AuthMd5, AuthText, ConnectClientAuthRequest, ConnectOpenRequest
from ndmp.protocol import AuthType, ConnectionStatus, Error, Message
from ndmp.services.connect import md5_digest
from pyndmpd_process import NdmpServer, module_shelf, ndmp_server, start_server  # noqa: F401


def auth(dma: Dma, data: AuthData) -> int:
    return dma.call(Message.CONNECT_CLIENT_AUTH, ConnectClientAuthRequest(data)).error


def test_only_version_4_is_spoken(ndmp_server: NdmpServer) -> None:
    dma = Dma.connect(ndmp_server.port, auth=False)
    assert dma.call(Message.CONNECT_OPEN, ConnectOpenRequest(3)).error == Error.ILLEGAL_ARGS_ERR
    assert dma.call(Message.CONNECT_OPEN, ConnectOpenRequest(4)).error == Error.NO_ERR


def test_connect_close_says_shutdown_and_closes(ndmp_server: NdmpServer) -> None:
    dma = Dma.connect(ndmp_server.port)
    dma.request(Message.CONNECT_CLOSE)
    code, body = dma.next_post()
    assert (code, body.reason) == (Message.NOTIFY_CONNECTION_STATUS, ConnectionStatus.SHUTDOWN)
    assert dma.sock.recv(10) == b""


def test_md5_needs_the_sessions_challenge_and_the_right_digest(start_server, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[users]\nbackup = "s3cret"\n')
    port = start_server("--config", str(config)).port
    dma = Dma.connect(port, auth=False)
    digest = md5_digest("s3cret", bytes(64))
    assert auth(dma, AuthData(AuthType.MD5, md5=AuthMd5("backup", digest))) == Error.NOT_AUTHORIZED_ERR
    challenge = dma.call(Message.CONFIG_GET_AUTH_ATTR, AuthAttrRequest(AuthType.MD5)).body.server_attr.challenge
    assert len(challenge) == 64
    assert auth(dma, AuthData(AuthType.MD5, md5=AuthMd5("backup", md5_digest("wrong", challenge)))) \
        == Error.NOT_AUTHORIZED_ERR
    assert auth(dma, AuthData(AuthType.TEXT, text=AuthText("backup", "wrong"))) == Error.NOT_AUTHORIZED_ERR
    assert auth(dma, AuthData(AuthType.NONE)) == Error.NOT_AUTHORIZED_ERR  # not configured
    assert auth(dma, AuthData(7)) == Error.ILLEGAL_ARGS_ERR
    assert dma.call(Message.CONFIG_GET_EXT_LIST).error == Error.NO_ERR  # allowed before auth
    assert dma.call(Message.MOVER_GET_STATE).error == Error.NOT_AUTHORIZED_ERR
    assert auth(dma, AuthData(AuthType.MD5, md5=AuthMd5("backup", md5_digest("s3cret", challenge)))) == Error.NO_ERR
    assert dma.call(Message.MOVER_GET_STATE).error == Error.NO_ERR
