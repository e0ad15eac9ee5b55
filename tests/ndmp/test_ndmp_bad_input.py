"""Bad input: one log line; the session ends or the request gets the NDMP
error; the server goes on serving everybody else."""

from __future__ import annotations

import re
import socket
import struct
import time

import pytest

from dma import Dma
from ndmp.messages import ConnectOpenRequest, Header, TapeOpenRequest
from ndmp.protocol import Error, Message, MessageType
from pyndmpd_process import LoadedDrive, NdmpServer, load_drive, module_shelf, ndmp_server, tape  # noqa: F401


def _still_serving(server: NdmpServer) -> None:
    dma = Dma.connect(server.port)
    assert dma.call(Message.CONFIG_GET_CONNECTION_TYPE).error == Error.NO_ERR
    dma.close()


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(10)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def _one_line(server: NdmpServer, pattern: str) -> None:
    """Exactly one log line says what happened."""
    server.wait_for_log(pattern)
    time.sleep(0.1)
    matching = [line for line in server.log() if re.search(pattern, line)]
    assert len(matching) == 1, matching


def test_truncated_fragment_ends_the_session_with_one_log_line(ndmp_server: NdmpServer) -> None:
    dma = Dma.connect(ndmp_server.port, auth=False)
    header = Header(1, 0, MessageType.REQUEST, Message.CONNECT_OPEN).pack()
    dma.sock.sendall(struct.pack(">I", 0x80000000 | 100) + header)  # 24 of 100 bytes
    dma.sock.shutdown(socket.SHUT_WR)
    assert _closed_by_server(dma.sock)
    _one_line(ndmp_server, r"truncated fragment: the connection closed after 24 of 100 bytes; closing the session")
    _still_serving(ndmp_server)


def test_oversized_fragment_ends_the_session_with_one_log_line(ndmp_server: NdmpServer) -> None:
    dma = Dma.connect(ndmp_server.port, auth=False)
    dma.sock.sendall(struct.pack(">I", 0x80000000 | 0x7FFFFFFF) + b"x" * 64)
    assert _closed_by_server(dma.sock)
    _one_line(ndmp_server, r"oversized fragment: 2147483647 bytes .*; closing the session")
    _still_serving(ndmp_server)


def test_record_split_in_fragments_is_reassembled(ndmp_server: NdmpServer) -> None:
    dma = Dma.connect(ndmp_server.port, auth=False)
    reply = dma.call(Message.CONNECT_OPEN, ConnectOpenRequest(4), fragment=5)
    assert reply.error == Error.NO_ERR


def test_message_before_auth_is_not_authorized_and_the_session_goes_on(ndmp_server: NdmpServer,
                                                                      tape: LoadedDrive) -> None:
    nst0 = tape.nst
    dma = Dma.connect(ndmp_server.port, auth=False)
    reply = dma.call(Message.TAPE_OPEN, TapeOpenRequest(nst0, 0))
    assert reply.header.error_code == 0 and reply.body.error == Error.NOT_AUTHORIZED_ERR
    _one_line(ndmp_server, r"TAPE_OPEN before authentication: NOT_AUTHORIZED_ERR")
    # The same session still answers, and serves once authenticated.
    assert dma.call(Message.CONNECT_OPEN, ConnectOpenRequest(4)).error == Error.NO_ERR
    from ndmp.messages import AuthData, ConnectClientAuthRequest

    assert dma.call(Message.CONNECT_CLIENT_AUTH, ConnectClientAuthRequest(AuthData(0))).error == Error.NO_ERR
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(nst0, 0)).error == Error.NO_ERR


@pytest.mark.parametrize("code", [0x20000001, 0x10000, 0x308])
def test_unknown_message_gets_a_header_error_and_the_session_goes_on(ndmp_server: NdmpServer,
                                                                     code: int) -> None:
    dma = Dma.connect(ndmp_server.port)
    reply = dma.call(code)
    assert reply.header.error_code == Error.NOT_SUPPORTED_ERR and reply.body is None
    _one_line(ndmp_server, rf"unknown or unsupported message {code:#x}: NOT_SUPPORTED_ERR")
    assert dma.call(Message.CONFIG_GET_CONNECTION_TYPE).error == Error.NO_ERR
    _still_serving(ndmp_server)


def test_undecodable_body_gets_xdr_decode_err(ndmp_server: NdmpServer) -> None:
    dma = Dma.connect(ndmp_server.port)
    seq = dma.sequence = dma.sequence + 1
    header = Header(seq, 0, MessageType.REQUEST, Message.TAPE_OPEN).pack()
    dma.send_record(header + struct.pack(">I", 1000) + b"abc")  # a string longer than the body
    reply = dma.wait_reply(seq, Message.TAPE_OPEN)
    assert reply.header.error_code == Error.XDR_DECODE_ERR
    _one_line(ndmp_server, r"TAPE_OPEN: undecodable body")
    _still_serving(ndmp_server)


def test_out_of_range_enums_are_answered_illegal_args(ndmp_server: NdmpServer, tape: LoadedDrive) -> None:
    nst0 = tape.nst
    dma = Dma.connect(ndmp_server.port)
    reply = dma.call(Message.TAPE_OPEN, TapeOpenRequest(nst0, 123))
    assert reply.header.error_code == 0 and reply.body.error == Error.ILLEGAL_ARGS_ERR


def test_peer_vanishing_with_the_tape_open_releases_the_drive(ndmp_server: NdmpServer, tape: LoadedDrive) -> None:
    nst0 = tape.nst
    dma = Dma.connect(ndmp_server.port)
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(nst0, 1)).error == Error.NO_ERR
    other = Dma.connect(ndmp_server.port)
    assert other.call(Message.TAPE_OPEN, TapeOpenRequest(nst0, 0)).error == Error.DEVICE_BUSY_ERR
    dma.close()
    ndmp_server.wait_for_log("session ended")
    deadline = time.monotonic() + 5
    while True:
        reply = other.call(Message.TAPE_OPEN, TapeOpenRequest(nst0, 0))
        if reply.error == Error.NO_ERR or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert reply.error == Error.NO_ERR
