"""How pyrestore opens and writes a regular file it restores: every byte
it is given is written (a short count is written on; one that makes no
progress is ``ENOSPC``, the full target the restore reports), and only
into a file of the target's own: a device, a FIFO, a symbolic link or a
file hard-linked elsewhere standing at the name is replaced, never opened
or written through.
"""

from __future__ import annotations

import errno
import os
import stat

#: how a file is made afresh (its name free), and how an old one of its own is
#: opened (never a terminal, never waiting on a FIFO put there between the two looks)
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OLD_FILE = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def write_all(fd: int, data: "bytes | memoryview", offset: int) -> int:
    """Write every byte of *data* at *offset* of *fd*; where they end.  A
    short count (a target filling up) is written on from where it stopped,
    so the next call says why: a file is never left cut short in silence
    (a write that makes no progress is ``ENOSPC``)."""
    n = os.pwrite(fd, data, offset)
    size = len(data)
    if n != size:
        view = memoryview(data)
        while n < size:
            done = os.pwrite(fd, view[n:], offset + n)
            if done <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            n += done
    return offset + size


def open_to_write(full: str, fresh: bool = True) -> int:
    """A descriptor to write a regular file's data at *full* (a path
    whose last component is not followed), never one through another
    node: a regular file with a single link there is overwritten
    (emptied when *fresh*); any other node at the name (a device, a
    FIFO, a symbolic link, a file hard-linked elsewhere, perhaps outside
    the target) is unlinked and the file made anew, never opened.  Not
    *fresh* (a checkpointed file going on) wants the file it began there
    (or none: made anew): any other node is ``EEXIST``.  A directory is
    ``EISDIR``."""
    for _ in range(3):  # (the name changing under us each time: given up)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            try:
                return os.open(full, NEW_FILE, 0o600)
            except FileExistsError:
                continue
        if stat.S_ISDIR(st.st_mode):
            raise OSError(errno.EISDIR, "a directory of that name exists")
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            fd = os.open(full, _OLD_FILE)
            now = os.fstat(fd)
            if stat.S_ISREG(now.st_mode) and now.st_nlink == 1 and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                os.set_blocking(fd, True)
                if fresh:
                    os.ftruncate(fd, 0)
                return fd
            os.close(fd)  # (swapped between the two looks: look again)
            continue
        if not fresh:
            raise OSError(errno.EEXIST, "the file being restored was replaced by another node")
        os.unlink(full)
    raise OSError(errno.EEXIST, "the name keeps changing")
