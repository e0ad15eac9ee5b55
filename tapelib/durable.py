"""Replacing a small file so that a crash leaves the old one or the new one.

Every state file the tools keep goes through :func:`replace_file`: a
cartridge's ``.json``, a shelf's ``state.json`` and ``shelf.json``, the
dumpdates file and its inode map (dumptool), pyrestore's symbol table.
The new content goes to a temporary file in the same folder (created
exclusively, never through a symbolic link), is flushed to the disk, and
is renamed over the old name; then the folder itself is flushed, so the
rename survives a power loss too.  On any failure the temporary file is
removed and the old file is untouched.  It lives in tapelib because every
other package of the project already stands on tapelib.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable

Writer = Callable[[BinaryIO], None]


def replace_file(path: str | os.PathLike[str], content: bytes | Writer, mode: int = 0o644) -> None:
    """Replace ``path`` by ``content`` (bytes, or a function writing to a binary file) atomically
    and durably, with ``mode``; OSError (the old file intact, no temporary file left) when it cannot."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "wb") as out:
            if isinstance(content, (bytes, bytearray, memoryview)):
                out.write(content)
            else:
                content(out)
            out.flush()
            os.fchmod(out.fileno(), mode & 0o7777)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    sync_folder(path.parent)


def sync_folder(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename or a new file in it) to the disk, where it can be."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
