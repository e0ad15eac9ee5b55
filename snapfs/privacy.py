"""Who may read a volume's folder: its owner alone.

A volume's ``data`` file holds every file's bytes and ``snapfs.db`` every
name, owner and xattr, whatever modes the mount shows for them: a reader of
the folder reads all of it.  So the folder is 0700 and the files in it 0600
(SQLite gives its ``-wal`` and ``-shm`` files the database's mode).
``snapfs create`` makes them so, a mount tightens an older volume's modes
before serving it, and ``snapfs fsck`` reports modes that are wider (and
tightens them when it repairs).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: The modes of a volume's folder and of every file in it.
FOLDER_MODE = 0o700
FILE_MODE = 0o600


def create_private(path: Path) -> None:
    """Create the empty file ``path`` with :data:`FILE_MODE` (whatever the umask); an existing one is tightened."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def wide_modes(voldir: str | os.PathLike) -> list[tuple[Path, int, int]]:
    """``(path, mode, wanted)`` for the folder and each file in it whose mode lets others in.

    Symbolic links are not followed (their own mode means nothing) and
    nothing below a subfolder is looked at: a volume keeps no subfolders.
    """
    folder = Path(voldir)
    out: list[tuple[Path, int, int]] = []
    st = os.lstat(folder)
    if stat.S_IMODE(st.st_mode) & 0o077:
        out.append((folder, stat.S_IMODE(st.st_mode), FOLDER_MODE))
    with os.scandir(folder) as entries:
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # a -wal file checkpointed away meanwhile
            if stat.S_ISREG(st.st_mode) or stat.S_ISSOCK(st.st_mode):
                mode = stat.S_IMODE(st.st_mode)
                if mode & 0o077:
                    out.append((Path(e.path), mode, mode & ~0o077 & 0o7777))
    return out


def describe(found: list[tuple[Path, int, int]]) -> list[str]:
    """One line for each wide mode :func:`wide_modes` found."""
    return [f"{p} has mode {mode:04o}: others can read the volume's data; it should be {wanted:04o}"
            for p, mode, wanted in found]


def tighten(voldir: str | os.PathLike) -> list[str]:
    """Take the group's and others' bits off the folder and its files; a line for each change made."""
    found = wide_modes(voldir)
    for p, _mode, wanted in found:
        os.chmod(p, wanted)  # the folder or a file wide_modes saw, never a symbolic link
    return [f"{p}: mode {mode:04o} tightened to {wanted:04o}" for p, mode, wanted in found]
