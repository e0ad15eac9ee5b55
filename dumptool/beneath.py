"""The target folder of a restore, every path in it resolved beneath it.

A restore writes names from an image into a folder that may already hold
symbolic links (``target/d -> /elsewhere``).  Following one would create or
change files outside the folder.  :class:`Beneath` opens each directory of
a path from the folder down without following any symbolic link (Linux
``openat2`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``, or, where the
kernel lacks it, one ``O_NOFOLLOW | O_DIRECTORY`` open per component) and
keeps the descriptors of the directories in use.  The last component is
then used relative to its directory's descriptor: through ``dir_fd=``, or
through ``/proc/self/fd/N/NAME`` for the calls that take only a path; each
caller asks for that component not to be followed (``O_NOFOLLOW``,
``follow_symlinks=False``, ``lstat``), as a restore already does.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

_O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_SYS_OPENAT2 = 437  # the same number on every Linux architecture (5.6 on)
_RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 0x02, 0x04, 0x08
_KEEP = 512  # directory descriptors kept between two trims

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _syscall = _libc.syscall
    _syscall.restype = ctypes.c_long
except (OSError, AttributeError):  # pragma: no cover (not Linux glibc)
    _syscall = None
_openat2_works: bool | None = None if _syscall is not None else False


def _openat2(dir_fd: int, rel: bytes) -> int:
    """The directory *rel* under *dir_fd*, symbolic links and ``..`` out refused (``OSError``)."""
    how = ctypes.create_string_buffer(struct.pack("QQQ", _O_PATH_DIR, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS
                                                  | _RESOLVE_NO_MAGICLINKS))
    fd = _syscall(_SYS_OPENAT2, ctypes.c_int(dir_fd), ctypes.c_char_p(rel), how, ctypes.c_size_t(24))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fsdecode(rel))
    return fd


def _walk_open(dir_fd: int, parts: list[bytes]) -> int:
    """As :func:`_openat2`, one component at a time."""
    fd = os.dup(dir_fd)
    try:
        for part in parts:
            nxt = os.open(part, _O_PATH_DIR | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


class Beneath:
    """The folder *target*: directories and names under it, never outside."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.fd = os.open(target, _O_PATH_DIR)
        self._dirs: dict[bytes, int] = {}

    def dir_fd(self, rel: bytes) -> int:
        """A descriptor of directory *rel* (``./a/b``, ``a/b``, ``.`` or
        empty), valid until the next :meth:`trim` or :meth:`forget`.
        ``OSError`` when a component is a symbolic link (``ELOOP``), not a
        directory or missing, or a name leads out (``..``)."""
        fd = self._dirs.get(rel)
        if fd is not None:
            return fd
        parts = [p for p in rel.split(b"/") if p and p != b"."]
        if b".." in parts:
            raise OSError(errno.EXDEV, "a name with '..' leads out of the target folder", os.fsdecode(rel))
        if not parts:
            return self.fd
        global _openat2_works
        if _openat2_works is not False:
            try:
                fd = _openat2(self.fd, b"/".join(parts))
                _openat2_works = True
            except OSError as exc:
                if exc.errno not in (errno.ENOSYS, errno.EPERM) or _openat2_works:
                    raise
                _openat2_works = False  # no openat2 here (or a seccomp filter): one open per component
        if _openat2_works is False:
            fd = _walk_open(self.fd, parts)
        self._dirs[rel] = fd
        return fd

    def split(self, rel: bytes) -> tuple[int, bytes]:
        """``(descriptor of the directory holding rel, its last component)``;
        ``.`` is the target folder itself (its descriptor and ``.``)."""
        parent, _, name = rel.rstrip(b"/").rpartition(b"/")
        if name in (b"", b"."):
            return self.fd, b"."
        if name == b"..":
            raise OSError(errno.EXDEV, "a name with '..' leads out of the target folder", os.fsdecode(rel))
        return self.dir_fd(parent), name

    def path(self, rel: bytes) -> str:
        """A path naming *rel* through its directory's descriptor, for the
        calls that take no ``dir_fd`` (valid as :meth:`dir_fd`'s)."""
        fd, name = self.split(rel)
        if name == b".":
            return self.target  # the folder itself, as the user named it
        return f"/proc/self/fd/{fd}/{os.fsdecode(name)}"

    def trim(self) -> None:
        """Close the kept descriptors when there are many (call between two files)."""
        if len(self._dirs) > _KEEP:
            self.forget()

    def forget(self) -> None:
        """Close every kept descriptor: after directories were moved or removed."""
        dirs, self._dirs = self._dirs, {}
        for fd in dirs.values():
            os.close(fd)

    def close(self) -> None:
        self.forget()
        os.close(self.fd)
