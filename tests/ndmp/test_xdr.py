"""Our XDR codec and message layouts against bytes captured from ndmjob
sessions (docs/ndmp.md): the encodings, not just a round trip."""

from __future__ import annotations

import pytest

from ndmp.errors import XdrError
from ndmp.messages import (
    Addr,
    AddrReply,
    MoverGetStateReply,
    NotifyConnectionStatus,
    TapeOpenRequest,
    TcpAddr,
)
from ndmp.mover import DEFAULT_RECORD_SIZE
from ndmp.protocol import AddrType, MoverMode
from ndmp.xdr import U64_INVALID, Packer, Unpacker, decode, encode


def words(hex_words: str) -> bytes:
    return bytes.fromhex(hex_words.replace(" ", ""))


def test_connection_status_post_matches_the_capture() -> None:
    body = encode(NotifyConnectionStatus(0, 4, "Hello"))
    assert body == words("00000000 00000004 00000005 48656c6c6f 000000")


def test_tcp_listen_reply_matches_the_capture() -> None:
    reply = AddrReply(0, Addr(AddrType.TCP, [TcpAddr(0x7F000001, 36569)]))
    assert encode(reply) == words("00000000 00000001 00000001 7f000001 00008ed9 00000000")


def test_idle_mover_state_matches_the_capture() -> None:
    reply = MoverGetStateReply(record_size=DEFAULT_RECORD_SIZE, window_length=U64_INVALID, mode=MoverMode.READ)
    assert encode(reply) == words("00000000" * 5 + "00002800 00000000" + "0000000000000000" * 4
                                  + "ffffffffffffffff 00000000")
    assert len(encode(reply)) == 72


def test_u64_is_high_word_first() -> None:
    p = Packer()
    p.u64(0x0000000100000002)
    assert p.data() == words("00000001 00000002")


def test_out_of_range_enum_decodes_as_a_plain_int() -> None:
    request = decode(TapeOpenRequest, words("00000003 41424300 0000007b"))
    assert (request.device, request.mode) == ("ABC", 123)


@pytest.mark.parametrize("data", [
    words("00000003 4142"),                    # string cut short
    words("00000003 41424300 0000007b 00"),    # a byte left over
    words("ffffffff"),                         # absurd length
])
def test_malformed_bodies_are_xdr_errors(data: bytes) -> None:
    with pytest.raises(XdrError):
        decode(TapeOpenRequest, data)


def test_array_count_larger_than_the_body_is_refused() -> None:
    with pytest.raises(XdrError):
        decode(AddrReply, words("00000000 00000001 7fffffff"))


def test_strings_are_padded_to_four_bytes() -> None:
    p = Packer()
    p.string("ab")
    assert p.data() == words("00000002 61620000")
    assert Unpacker(p.data()).string() == "ab"
