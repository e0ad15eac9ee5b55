"""``security.NTACL``: an NT security descriptor with Samba's version header.

Layout (Samba's ``xattr_NTACL``, NDR, little-endian): uint16 version, uint16
union level, a 4-byte pointer, then per version
- v1: the descriptor;
- v2: a pointer, a 16-byte hash (never checked), the descriptor;
- v3: a pointer, uint16 hash type (1 = SHA-256), a 64-byte hash, the descriptor;
- v4: as v3, then a NUL-terminated description (``"posix_acl"``), an NTTIME and
  the 64-byte hash of the POSIX ACL, then the descriptor.
The descriptor starts at the next 4-byte boundary and its offsets count from
the blob's start (Samba's NDR relative base).

What snapfs writes (:func:`encode`): **v1**.  Samba trusts v1 and v2 blobs as
they are, while for v3/v4 it recomputes the hash from the descriptor its own
mapping of the file's POSIX ACL and mode gives, and drops the stored
descriptor on any mismatch: a hash only Samba can compute.  Blobs Samba wrote
are stored byte for byte, so they keep working with Samba; :func:`decode`
reads all four versions.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from ..errors import err
from . import security
from .security import Descriptor

_PTR = 0x00020000
HASH_NONE, HASH_SHA256 = 0, 1


@dataclass(frozen=True)
class NtAcl:
    version: int
    sd: Descriptor
    hash_type: int = HASH_NONE
    hash: bytes = b""
    description: str = ""
    time: int = 0
    sys_acl_hash: bytes = b""


def encode(sd: Descriptor) -> bytes:
    """A v1 blob of ``sd`` (see the module's note on why v1)."""
    return struct.pack("<HHI", 1, 1, _PTR) + security.build(sd, base=8)


def encode_v3(sd: Descriptor, hash_type: int, hash: bytes) -> bytes:
    """A v3 blob (Samba's own layout; for tests and for tools that compute Samba's hash)."""
    head = struct.pack("<HHIIH", 3, 3, _PTR, _PTR + 4, hash_type) + hash.ljust(64, b"\0")[:64]
    head += b"\0" * (-len(head) % 4)
    return head + security.build(sd, base=len(head))


def decode(blob: bytes) -> NtAcl:
    """Read a v1-v4 blob; EINVAL (one line) for anything else."""
    blob = bytes(blob)
    if len(blob) < 8:
        raise err(errno.EINVAL, f"security.NTACL of {len(blob)} bytes is too short")
    version, level, _ptr = struct.unpack_from("<HHI", blob)
    if version != level:
        raise err(errno.EINVAL, f"security.NTACL version {version} with union level {level}")
    if version == 1:
        return NtAcl(1, security.parse(blob, 8, base=0))
    if version not in (2, 3, 4):
        raise err(errno.EINVAL, f"security.NTACL version {version} is unknown (1-4 are)")
    at = 12
    if version == 2:
        h, at = blob[at:at + 16], at + 16
        return NtAcl(2, security.parse(blob, _align(at), base=0), hash=h)
    if len(blob) < at + 66:
        raise err(errno.EINVAL, f"security.NTACL version {version} is truncated")
    htype = struct.unpack_from("<H", blob, at)[0]
    h, at = blob[at + 2:at + 66], at + 66
    if version == 3:
        return NtAcl(3, security.parse(blob, _align(at), base=0), htype, h)
    nul = blob.find(b"\0", at)
    if nul < 0:
        raise err(errno.EINVAL, "security.NTACL version 4 has no end to its description")
    desc = blob[at:nul].decode("utf-8", "replace")
    at = _align(nul + 1)
    if len(blob) < at + 72:
        raise err(errno.EINVAL, "security.NTACL version 4 is truncated")
    t = struct.unpack_from("<Q", blob, at)[0]
    sh, at = blob[at + 8:at + 72], at + 72
    return NtAcl(4, security.parse(blob, _align(at), base=0), htype, h, desc, t, sh)


def _align(n: int) -> int:
    return n + (-n % 4)
