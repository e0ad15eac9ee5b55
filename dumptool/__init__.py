"""dumptool: the dump engine of snapdump.

It writes and reads BSD dump-format images exactly as Linux dump/restore
0.4b47 do, so that images made by ``pydump`` restore with the real
``/sbin/restore`` and images made by the real ``/sbin/dump`` restore with
``pyrestore``.

The byte layout lives in :mod:`dumptool.format` (pure functions over bytes,
no I/O); errors a user can cause are :class:`dumptool.errors.DumpError`.
"""
