"""EA payloads and ACLs (dump-format.md section 7), checked against the sheet's samples."""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dumptool.errors import FormatError, FormatLimitError
from dumptool.format import (
    ACL_GROUP,
    ACL_GROUP_OBJ,
    ACL_MASK,
    ACL_OTHER,
    ACL_USER,
    ACL_USER_OBJ,
    EXT2_XATTR_MAGIC,
    XATTR_MAXSIZE,
    AclEntry,
    acl_ext_to_xattr,
    acl_xattr_to_ext,
    canonical_acl,
    ext2_xattr_hash,
    pack_acl_xattr,
    pack_ext_acl,
    pack_xattr_block,
    parse_acl_xattr,
    parse_ext_acl,
    split_xattr_name,
    unpack_xattr_payload,
)

# section 7.4
EXT_ACL = bytes.fromhex("01000000" "01000600" "02000600d2040000" "04000400" "10000600" "20000400")
LINUX_ACL = base64.b64decode("AgAAAAEABgD/////AgAGANIEAAAEAAQA/////xAABgD/////IAAEAP////8=")
DEFAULT_EXT_ACL = bytes.fromhex("01000000 0100 0700 0200 0500 4d000000 0400 0500 1000 0500 2000 0500".replace(" ", ""))


def s2a_payload() -> bytes:
    p = bytearray(256)
    p[0:4] = bytes.fromhex("010002ea")
    p[0x04:0x14] = bytes.fromhex("03015800 00000000 03000000 00000000".replace(" ", ""))
    p[0x14:0x18] = b"foo\0"
    p[0x18:0x28] = bytes.fromhex("00023c00 00000000 1c000000 00000000".replace(" ", ""))
    p[0x40:0x5c] = EXT_ACL
    p[0x5c:0x60] = b"bar\0"
    return bytes(p)


def s2b_payload() -> bytes:
    p = bytearray(1024)
    p[0:16] = bytes.fromhex("000002ea 01000000 01000000 00000000".replace(" ", ""))
    p[16:20] = bytes.fromhex("a84fd4ec")
    p[0x20:0x34] = bytes.fromhex("0301fc03 00000000 03000000 6361fd95 666f6f00".replace(" ", ""))
    p[0x34:0x44] = bytes.fromhex("0002e003 00000000 1c000000 2700c504".replace(" ", ""))
    p[0x3e0:0x3fc] = EXT_ACL
    p[0x3fc:0x400] = b"bar\0"
    return bytes(p)


EXPECTED = [(b"user.foo", b"bar"), (b"system.posix_acl_access", LINUX_ACL)]


def test_acl_forms_convert_as_restore_does() -> None:
    assert acl_ext_to_xattr(EXT_ACL) == LINUX_ACL
    assert acl_xattr_to_ext(LINUX_ACL) == EXT_ACL
    assert len(LINUX_ACL) == 44


def test_default_acl_sample_converts_back_and_forth() -> None:
    entries = parse_ext_acl(DEFAULT_EXT_ACL)
    assert AclEntry(ACL_USER, 5, 77) in entries
    assert pack_ext_acl(entries) == DEFAULT_EXT_ACL


def test_in_inode_payload_of_sample_s2a_reads_back() -> None:
    assert unpack_xattr_payload(s2a_payload()) == EXPECTED


def test_block_payload_of_sample_s2b_reads_back() -> None:
    assert unpack_xattr_payload(s2b_payload()) == EXPECTED


def test_our_block_matches_ext2_layout_of_sample_s2b() -> None:
    ours = pack_xattr_block({"system.posix_acl_access": LINUX_ACL, "user.foo": b"bar"})
    sample = s2b_payload()
    assert len(ours) == 1024
    assert ours[:12] == sample[:12]  # magic, refcount 1, blocks 1
    assert ours[0x20:] == sample[0x20:]  # sorted entries, hashes, values from the end
    assert struct.unpack_from("<I", ours, 12)[0] != 0  # h_hash (ignored by restore) is ext2's


def test_entry_hashes_match_the_sample() -> None:
    assert ext2_xattr_hash(b"foo", b"bar") == 0x95FD6163
    assert ext2_xattr_hash(b"", EXT_ACL) == 0x04C50027


def linux_acls(named: bool) -> st.SearchStrategy[bytes]:
    perm = st.integers(0, 7)
    ids = st.sets(st.integers(0, 2**32 - 2), max_size=5)

    def build(p, users, groups) -> bytes:
        entries = [AclEntry(ACL_USER_OBJ, p[0])]
        entries += [AclEntry(ACL_USER, p[1], u) for u in sorted(users)]
        entries.append(AclEntry(ACL_GROUP_OBJ, p[2]))
        entries += [AclEntry(ACL_GROUP, p[3], g) for g in sorted(groups)]
        if users or groups:
            entries.append(AclEntry(ACL_MASK, p[4]))
        entries.append(AclEntry(ACL_OTHER, p[5]))
        return pack_acl_xattr(entries)

    return st.builds(build, st.tuples(*[perm] * 6), ids if named else st.just(set()), ids if named else st.just(set()))


xattr_sets = st.fixed_dictionaries(
    {},
    optional={
        b"system.posix_acl_access": linux_acls(True),
        b"system.posix_acl_default": linux_acls(True),
    },
).flatmap(lambda acls: st.dictionaries(
    st.tuples(st.sampled_from([b"user.", b"trusted.", b"security."]), st.binary(min_size=1, max_size=30)).map(lambda t: t[0] + t[1]),
    st.binary(max_size=200),
    max_size=8,
).map(lambda d: {**d, **acls}))


@given(xattr_sets)
def test_xattr_block_round_trips_with_acls(xattrs: dict[bytes, bytes]) -> None:
    payload = pack_xattr_block(xattrs)
    assert len(payload) % 1024 == 0 and len(payload) <= XATTR_MAXSIZE
    assert struct.unpack_from("<I", payload, 0)[0] == EXT2_XATTR_MAGIC
    assert dict(unpack_xattr_payload(payload)) == xattrs
    names = [split_xattr_name(n) for n, _ in unpack_xattr_payload(payload)]
    assert names == sorted(names, key=lambda e: (e[0], len(e[1]), e[1])), "ext2 sort order"


@given(linux_acls(True))
def test_acl_round_trips_through_the_ext_form(value: bytes) -> None:
    ext = acl_xattr_to_ext(value)
    assert acl_ext_to_xattr(ext) == value


def test_acl_is_put_in_canonical_order_for_the_kernel() -> None:
    shuffled = [AclEntry(ACL_OTHER, 4), AclEntry(ACL_USER, 6, 9), AclEntry(ACL_MASK, 6), AclEntry(ACL_USER, 6, 3),
                AclEntry(ACL_GROUP_OBJ, 4), AclEntry(ACL_USER_OBJ, 6)]
    assert [(e.tag, e.id) for e in canonical_acl(shuffled)] == [
        (ACL_USER_OBJ, 0xFFFFFFFF), (ACL_USER, 3), (ACL_USER, 9), (ACL_GROUP_OBJ, 0xFFFFFFFF),
        (ACL_MASK, 0xFFFFFFFF), (ACL_OTHER, 0xFFFFFFFF)]


@pytest.mark.parametrize("entries", [
    [AclEntry(ACL_USER_OBJ, 6), AclEntry(ACL_USER, 6, 1), AclEntry(ACL_GROUP_OBJ, 4), AclEntry(ACL_OTHER, 4)],
    [AclEntry(ACL_USER_OBJ, 6), AclEntry(ACL_OTHER, 4)],
    [AclEntry(ACL_USER_OBJ, 9), AclEntry(ACL_GROUP_OBJ, 4), AclEntry(ACL_OTHER, 4)],
])
def test_invalid_acls_are_refused(entries) -> None:
    with pytest.raises(FormatError):
        pack_ext_acl(entries)


def test_ext_acl_with_a_bad_count_is_refused_like_restore() -> None:
    with pytest.raises(FormatError):
        parse_ext_acl(EXT_ACL[:-2])
    with pytest.raises(FormatError):
        parse_ext_acl(bytes.fromhex("01000000"))  # empty: restore cannot apply it
    with pytest.raises(FormatError):
        parse_acl_xattr(b"\1\0\0\0")


def test_minimal_acl_of_three_short_entries_is_accepted() -> None:
    entries = [AclEntry(ACL_USER_OBJ, 6), AclEntry(ACL_GROUP_OBJ, 4), AclEntry(ACL_OTHER, 4)]
    assert len(pack_ext_acl(entries)) == 16
    assert parse_ext_acl(pack_ext_acl(entries)) == entries


@pytest.mark.parametrize("name", [b"system.foo", b"system.data", b"os2.x", b"user.", b"user." + b"n" * 256])
def test_names_restore_cannot_apply_are_refused(name: bytes) -> None:
    with pytest.raises(FormatLimitError):
        pack_xattr_block({name: b"v"})


def test_payload_over_restores_limit_is_refused() -> None:
    with pytest.raises(FormatLimitError, match="4096"):
        pack_xattr_block({b"user.big": bytes(4096)})
    assert len(pack_xattr_block({b"user.big": bytes(3000)})) == 3072
    assert len(pack_xattr_block({b"user.big": bytes(4000)})) == 4096


def test_unknown_index_and_bad_magic_are_format_errors() -> None:
    payload = bytearray(pack_xattr_block({b"user.a": b"b"}))
    payload[33] = 9
    with pytest.raises(FormatError, match="index 9"):
        unpack_xattr_payload(bytes(payload))
    with pytest.raises(FormatError, match="magic"):
        unpack_xattr_payload(bytes(1024))


def test_ext4_system_index_is_read_for_what_it_is() -> None:
    payload = bytearray(pack_xattr_block({b"user.data": b"x"}))
    payload[33] = 7
    assert unpack_xattr_payload(bytes(payload)) == [(b"system.data", b"x")]


def test_entries_running_past_the_payload_are_format_errors() -> None:
    payload = pack_xattr_block({b"user.a": b"b"})
    with pytest.raises(FormatError):
        unpack_xattr_payload(payload[:40])
