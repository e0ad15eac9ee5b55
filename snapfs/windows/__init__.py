"""Windows file metadata in Samba's xattr conventions: codecs any part of the project can use.

- :mod:`.dosattrib`: ``user.DOSATTRIB`` (DOS attributes and creation time).
- :mod:`.security`: NT security descriptors (SIDs, ACEs, ACLs), self-relative form.
- :mod:`.ntacl`: ``security.NTACL`` (a descriptor with Samba's version header and hashes).
- :mod:`.dosname`: DOS 8.3 short names, generated as ONTAP does.

Bad input is :class:`snapfs.errors.SnapfsError` with EINVAL, one line.
"""

DOSATTRIB_XATTR = b"user.DOSATTRIB"
NTACL_XATTR = b"security.NTACL"
#: ``user.DosStream.NAME:$DATA`` (Samba's vfs_streams_xattr): the value is the stream plus one NUL
STREAM_PREFIX = b"user.DosStream."
STREAM_SUFFIX = b":$DATA"
