"""A volume move's last step: the volume's folder (its store) goes to another
folder, ``snapfs volume move VOL --to DIR``.

The folder that holds a volume's folder stands for its aggregate: the move
goes to another one (DIR's parent must exist, DIR must not), and the volume's
identity records it (:meth:`snapfs.identity.IdentityOps.volume_move`: the
aggregate becomes DIR's parent folder and the generation goes up, unless the
identity is kept, the CAB case).  On one file system the folder is renamed;
across file systems it is copied into a hidden folder beside DIR
(``.DIR.moving``), each file and the folder made durable, renamed to DIR, and
only then is the old folder removed.  The open volume lets go of its files
for that moment and takes them again at DIR (:meth:`snapfs.volume.Volume.relocate`):
a mounted volume stays mounted, its requests wait meanwhile.

The phases before it (the transfer, during which sessions go on; the cutover,
after which new dump and restore sessions are refused until the move
completes; waiting for the running ones to finish) are the CLI's
(:mod:`snapfs.cli.events`).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from . import privacy
from .errors import SnapfsError, err
from .identity import VolumeIdentity
from .volume import Volume

#: The hidden folder a copy across file systems is made in (beside DIR): this prefix, DIR's name, this suffix.
STAGING_PREFIX, STAGING_SUFFIX = ".", ".moving"


def check_destination(voldir: str | os.PathLike[str], to: str | os.PathLike[str],
                      mountpoint: str | None = None) -> Path:
    """DIR as a volume move may use it (absolute), or SnapfsError saying why
    not.  Nothing under ``mountpoint`` (the volume's own mount) is touched: the
    mount daemon asks this too, and would wait on itself."""
    src = Path(os.path.realpath(voldir))
    dest = Path(os.path.abspath(to))
    for inside in (str(src), mountpoint):
        if inside and (dest == Path(inside) or dest.is_relative_to(inside)):
            raise err(errno.EINVAL, f"cannot move volume {src} into {inside} itself: name a folder outside it")
    parent = Path(os.path.realpath(dest.parent))
    if mountpoint and parent.is_relative_to(mountpoint):
        raise err(errno.EINVAL, f"cannot move volume {src} into its own mount {mountpoint}")
    dest = parent / dest.name
    if dest == src or dest.is_relative_to(src):
        raise err(errno.EINVAL, f"cannot move volume {src} into itself")
    if not parent.is_dir():
        raise err(errno.ENOENT, f"cannot move volume {src} to {dest}: {parent} is not a folder")
    if os.path.lexists(dest):
        raise err(errno.EEXIST, f"cannot move volume {src} to {dest}: it exists; name a new folder")
    if parent == src.parent:
        raise err(errno.EINVAL, f"cannot move volume {src} to {dest}: it is in the same folder (aggregate) "
                  f"{parent}; a volume move goes to another one")
    return dest


def move_folder(src: Path, dest: Path) -> None:
    """Move the volume folder ``src`` to ``dest`` (see the module's text);
    the caller holds the volume's lock and has closed its files."""
    if os.stat(src).st_dev == os.stat(dest.parent).st_dev:
        os.rename(src, dest)  # done: what follows only makes it durable sooner
        for folder in (dest.parent, src.parent):
            try:
                sync_folder(folder)
            except OSError:
                pass
        return
    staging = dest.parent / f"{STAGING_PREFIX}{dest.name}{STAGING_SUFFIX}"
    if os.path.lexists(staging):  # a copy that a crash left unfinished
        shutil.rmtree(staging)
    os.mkdir(staging, privacy.FOLDER_MODE)
    try:
        for entry in os.scandir(src):
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISSOCK(mode):
                continue  # the control socket: the daemon binds a new one there
            if not stat.S_ISREG(mode):
                raise err(errno.EINVAL, f"cannot move volume {src}: {entry.path} is not a plain file")
            _copy_durably(Path(entry.path), staging / entry.name)
        sync_folder(staging)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # done: the volume lives in dest; the old copy goes (a crash from here leaves both, the same)
    for step in (lambda: sync_folder(dest.parent), lambda: shutil.rmtree(src), lambda: sync_folder(src.parent)):
        try:
            step()
        except OSError:
            pass


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename, a new file) to the disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_durably(src: Path, dest: Path) -> None:
    shutil.copyfile(src, dest, follow_symlinks=False)
    os.chmod(dest, stat.S_IMODE(os.lstat(src).st_mode))
    fd = os.open(dest, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_volume(vol: Volume, to: str, keep_identity: bool = False, mountpoint: str | None = None) -> VolumeIdentity:
    """Move open volume ``vol``'s folder to ``to`` and record the move in its
    identity; on failure it stays where and as it was (SnapfsError)."""
    src = Path(os.path.realpath(vol.path))
    dest = check_destination(src, to, mountpoint)
    was = vol.volume_identity()
    now = vol.volume_move(str(dest.parent), keep_identity)
    try:
        vol.relocate(dest, lambda: move_folder(src, dest))
    except OSError as exc:
        vol.volume_move_undo(was)
        raise SnapfsError(f"cannot move volume {vol.name} to {dest}: {exc.strerror or exc}; "
                          f"it stays in {src}", exc.errno or errno.EIO) from None
    except BaseException:
        vol.volume_move_undo(was)
        raise
    return now
