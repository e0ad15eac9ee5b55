"""A volume move's last step: the volume's folder (its store) goes to another
folder, ``snapfs volume move VOL --to DIR``.

The folder that holds a volume's folder stands for its aggregate: the move
goes to another one (DIR's parent must exist, DIR must not), and the volume's
identity records it (:meth:`snapfs.identity.IdentityOps.volume_move`: the
aggregate becomes DIR's parent folder and the generation goes up, unless the
identity is kept, the CAB case).  On one file system the folder is renamed;
across file systems it is copied into a hidden folder beside DIR
(``.DIR.moving``), each file and the folder made durable, renamed to DIR, and
only then is the old folder removed; the transfer (:func:`precopy`) has
copied the data file there already, while the volume was served, so the
last step compares it chunk by chunk and writes again only what changed
since.  The open volume lets go of its files for that moment and takes them
again at DIR (:meth:`snapfs.volume.Volume.relocate`): a mounted volume stays
mounted, its requests wait meanwhile.

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
from .blockstore import DATA_FILE
from .identity import VolumeIdentity
from .volume import Volume

#: The hidden folder a copy across file systems is made in (beside DIR): this prefix, DIR's name, this suffix.
STAGING_PREFIX, STAGING_SUFFIX = ".", ".moving"
#: Bytes compared (and written when they differ) at a time when the last step catches the data file up.
CHUNK = 1 << 20


def staging_of(dest: Path) -> Path:
    """The hidden folder beside ``dest`` a copy across file systems is made in."""
    return dest.parent / f"{STAGING_PREFIX}{dest.name}{STAGING_SUFFIX}"


def same_file_system(voldir: Path, dest: Path) -> bool:
    return os.stat(voldir).st_dev == os.stat(dest.parent).st_dev


def precopy(voldir: str | os.PathLike[str], dest: Path) -> bool:
    """The transfer, while the volume is served and its sessions run: across
    file systems, copy its data file into the staging folder (what changes
    meanwhile the last step catches up, comparing it chunk by chunk); True
    when it did (on one file system the last step renames: nothing to copy)."""
    src = Path(os.path.realpath(voldir))
    if same_file_system(src, dest):
        return False
    staging = staging_of(dest)
    try:
        if os.path.lexists(staging):  # what a crash left: started again
            shutil.rmtree(staging)
        os.mkdir(staging, privacy.FOLDER_MODE)
        shutil.copyfile(src / DATA_FILE, staging / DATA_FILE)
    except OSError as exc:
        drop_staging(dest)
        raise SnapfsError(f"cannot move volume {src} to {dest}: {exc.strerror or exc}",
                          exc.errno or errno.EIO) from None
    return True


def drop_staging(dest: Path) -> None:
    """Remove what a transfer to ``dest`` left, the move not done (nothing is left once it is)."""
    shutil.rmtree(staging_of(dest), ignore_errors=True)


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
    if same_file_system(src, dest):
        os.rename(src, dest)  # done: what follows only makes it durable sooner
        for folder in (dest.parent, src.parent):
            try:
                sync_folder(folder)
            except OSError:
                pass
        return
    staging = staging_of(dest)
    if not os.path.isdir(staging) or os.path.islink(staging):
        if os.path.lexists(staging):
            os.unlink(staging)
        os.mkdir(staging, privacy.FOLDER_MODE)
    try:
        for entry in os.scandir(staging):  # only the transfer's data file may stay (a stale -wal would harm)
            if entry.name != DATA_FILE or not entry.is_file(follow_symlinks=False):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        for entry in os.scandir(src):
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISSOCK(mode):
                continue  # the control socket: the daemon binds a new one there
            if not stat.S_ISREG(mode):
                raise err(errno.EINVAL, f"cannot move volume {src}: {entry.path} is not a plain file")
            target = staging / entry.name
            if entry.name == DATA_FILE and target.exists():
                _catch_up(Path(entry.path), target)
            else:
                _copy_durably(Path(entry.path), target)
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


def _catch_up(src: Path, copy: Path) -> None:
    """Make ``copy`` (the transfer's) hold ``src``'s bytes: each chunk that
    differs written again, the length cut to ``src``'s; durably."""
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fout = os.open(copy, os.O_RDWR | os.O_CLOEXEC)
        try:
            size = os.fstat(fin).st_size
            offset = 0
            while offset < size:
                want = os.pread(fin, CHUNK, offset)
                if not want:
                    break
                if os.pread(fout, len(want), offset) != want:
                    os.pwrite(fout, want, offset)
                offset += len(want)
            os.ftruncate(fout, offset)
            os.fchmod(fout, stat.S_IMODE(os.fstat(fin).st_mode))
            os.fsync(fout)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


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
