"""Pass V on the way back: the filer's objects of an image put on the restored files.

After the files of an extract (``-x``, ``-r``), :class:`FilerObjects` applies
the entries of the image's Pass V record (:mod:`dumptool.format.pass5`) to the
inodes restored, before the directories get their modes and times:

- into a snapfs volume (the target is a snapfs mount or under one): xattrs and
  NT ACLs as xattrs, named streams through the volume's ``stream_write``, DOS
  8.3 names (``dosnames_set``), a LUN record (``lun_adopt``) when the file lands
  at the root of the volume or of a qtree (deeper it stays a plain file), qtree
  records (``qtree_adopt``) only for a qtree restored to the volume's root,
  a junction's record (``junction_adopt``) on its restored symbolic link when
  the volume it leads to is still in the record's folder (else the link stays
  a symbolic link, said in one warning);
- into any other directory: xattrs and NT ACLs as Samba stores them, a stream
  as ``user.DosStream.NAME:$DATA`` when it fits one xattr (64 KiB), else as a
  ``FILE:NAME`` file beside the file with ``--streams-as-files`` or skipped
  with a warning; 8.3 names, LUN and qtree records have no Samba form and are
  not kept there (said with -v).

A big stream's value is not in memory: the image reader spooled it
(:class:`~dumptool.format.pass5.Spooled`); the volume reads it from the spool
file in chunks, a plain directory's ``FILE:NAME`` is written in chunks.

``-C`` compares the same objects (:meth:`FilerObjects.compare`).
snapfs is imported only when the target is on a snapfs volume.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from snapdump.snapfs_names import VOLUME_XATTR

from .format.pass5 import CHUNK, Entry, Kind, Spooled, kind_name, value_chunks
from .restore_options import Options
from .restore_report import Report, RestoreError
from .restore_rules import Renames
from .restored_file import open_to_write, write_all

if TYPE_CHECKING:
    from .extraction import Extractor
    from .image_reader import ImageReader

_DOSNAME_XATTR = "trusted.snapfs.dosname"
_NTACL, _POSIX_ACL = b"security.NTACL", b"system.posix_acl_access"
#: the unix permissions of a file with only NT permissions in a unix-style qtree (snapfs.winmeta's)
_UNIX_DEFAULT = 0o755
#: the style a file crossed from for each rule: NT-only into unix, unix-only into ntfs
_OTHER_STYLE = {"unix": "ntfs", "ntfs": "unix"}
_STREAM_PREFIX, _STREAM_SUFFIX = b"user.DosStream.", b":$DATA"
#: the largest stream one xattr holds (Samba's 64 KiB less the NUL it appends)
STREAM_XATTR_MAX = 65535
#: the filer's records as a snapfs mount shows them among the xattrs
FILER_XATTRS = {Kind.LUN: b"trusted.snapfs.lun", Kind.QTREE: b"trusted.snapfs.qtree",
                Kind.JUNCTION: b"trusted.snapfs.junction"}


def snapfs_root(target: str) -> str | None:
    """The mount point of the snapfs volume *target* is on (None: not on one)."""
    p = os.path.realpath(target)
    try:
        dev = os.stat(p).st_dev
    except OSError:
        return None
    while True:
        try:
            os.getxattr(p, VOLUME_XATTR)  # on a snapfs mount's root: its volume folder
            return p
        except OSError:
            pass
        up = os.path.dirname(p)
        try:
            if up == p or os.stat(up).st_dev != dev:
                return None
        except OSError:
            return None
        p = up


class FilerTarget:
    """A restore's session with the snapfs volume it writes into (none for another target,
    nor for ``-N``), open for one pass: the restore acts as the restoring owner
    ``pyrestore-PID`` (or the owner it runs as, under ``snapfs restrict exec``;
    :meth:`snapfs.client.Client.act_as`), which no lock on the target
    stops, and each LUN it restores is under client I/O restriction of that owner
    (:meth:`restrict`) until :meth:`close`, which lifts them, also when the pass fails."""

    def __init__(self, target: str, report: Report, opts: Options) -> None:
        self.report = report
        self.target = target
        self.root = None if opts.dry_run else snapfs_root(target)
        self.owner = f"pyrestore-{os.getpid()}"
        self.client = None
        self._restricted: dict[int, str] = {}  # inode -> its path from the volume's root, when restricted
        self._base = ""  # the target's path from the volume's root
        self._kept: set[int] = set()
        #: ``--rename``'s moves (:class:`~dumptool.restore_rules.Renames`): where an image's path lands
        self.renames: Renames | None = None
        self._styles: dict[str, str] | None = None  # qtree name -> security style ("" -> the volume's)
        #: files and directories the security style may change (see :meth:`note`): ./path -> (style, uid, gid, mode)
        self._restyle: dict[bytes, tuple[str, int, int, int]] = {}
        #: the security styles of the dumped qtrees, by their ./path on the image (from Pass V)
        self.source_styles: dict[bytes, str] = {}
        if self.root is not None:
            from snapfs import client as _client  # only for a target on snapfs

            from snapfs.errors import SnapfsError

            try:
                self.client = _client.open_volume(self.root)
                self.owner = self.client.act_as(self.owner, restore=True, inherit=True)
                self._base = os.path.relpath(os.path.realpath(target), self.root)
                #: the files under restriction of this owner before the restore (kept so after it)
                self._kept = {r.ino for r in self.client.restriction_list() if r.owner == self.owner}
            except SnapfsError as exc:
                self.close()
                raise RestoreError(f"{self.root}: cannot restore into this snapfs volume: {exc.message}") from None

    def restrict(self, rel: str) -> None:
        """Put ``rel`` (from the volume's root) under this restore's client I/O restriction."""
        assert self.client is not None
        ino = self.client.restrict(rel, self.owner).ino  # (the file at rel now: maybe made anew)
        if ino not in self._kept:
            self._restricted[ino] = rel

    def hold_new(self, path: bytes) -> None:
        """Regular file ``./path`` (under the target) was just created, before its data: where
        a LUN can be (the root of the volume or a directory of it: a qtree, or one this
        restore makes a qtree), it is put under the restore's client I/O restriction until
        :meth:`close`, so that no client opens a LUN half restored (its Pass V record, at the
        image's end, makes it a LUN).  Deeper files cost nothing."""
        if self.client is None:
            return
        rel = os.path.normpath(os.path.join(self._base, os.fsdecode(path)))
        if rel.count("/") > 1:
            return
        try:
            self.restrict(rel)
        except Exception as exc:  # SnapfsError: said; the file is restored all the same
            self.report.warn(f"{os.fsdecode(path)}: not put under client I/O restriction while restored: "
                             f"{getattr(exc, 'message', None) or exc}")

    def style_of(self, path: bytes) -> str:
        """The security style of the tree ``./path`` (under the target) lands in."""
        assert self.client is not None and self.root is not None
        if self._styles is None:
            self._styles = {q.name: q.security_style for q in self.client.qtree_list()}
            self._styles[""] = self.client.volume_identity().security_style
        rel = os.path.normpath(os.path.join(self._base, os.fsdecode(path)))
        return self._styles.get(rel.split("/", 1)[0], self._styles[""])

    def note(self, path: bytes, mode: int, uid: int, gid: int, xattrs: list[tuple[bytes, bytes]]) -> None:
        """A file or directory ``./path`` was given its tape's owner, mode and xattrs: the
        security style's rules may apply to it at :meth:`close` (see :meth:`_restyle_all`)."""
        if self.client is None or stat.S_IFMT(mode) not in (stat.S_IFREG, stat.S_IFDIR):
            return
        names = {n for n, _ in xattrs}
        if stat.S_IMODE(mode) == 0 and _POSIX_ACL not in names:
            candidate = "unix"  # NT-only, when an NT ACL comes (EA record or Pass V)
        elif _NTACL not in names:
            candidate = "ntfs"  # unix-only, unless Pass V brings an NT ACL
        else:
            return
        self._restyle[path] = (candidate, uid, gid, mode)

    def _source_style(self, path: bytes) -> str | None:
        """The style of the dumped qtree the file landed at ``./path`` was in (None: not known
        from the image); through ``--rename``, the qtree of its name on the image."""
        if self.renames is not None:
            path = self.renames.origin(path)
        path = os.path.normpath(path)  # as the keys: "./a/b" is "a/b"
        while True:
            style = self.source_styles.get(path)
            if style is not None or path in (b".", b"/"):
                return style
            path = os.path.dirname(path) or b"."

    def _restyle_all(self) -> None:
        """Into a unix-style tree, a file or directory with only NT permissions (an NT ACL,
        no POSIX ACL, no permission bits) gets the tree's default unix permissions
        (0755); into an ntfs-style tree, one with only unix permissions (no NT ACL) gets
        the default NT ACL made from its owner, group and mode: stored, as the volume
        shows them (:mod:`snapfs.winmeta`), so that they stay with the file."""
        if not self._restyle or not self.source_styles:
            return
        from snapfs.windows import ntacl, security  # only for a target on snapfs

        from .extraction import chmod_nofollow

        self._styles = None  # (qtrees the restore made count)
        for path, (style, uid, gid, mode) in self._restyle.items():
            if self.style_of(path) != style or self._source_style(path) != _OTHER_STYLE[style]:
                continue
            full = os.path.join(self.target, os.fsdecode(path))
            try:
                st = os.lstat(full)
                if stat.S_IFMT(st.st_mode) != stat.S_IFMT(mode):
                    continue
                names = set(os.listxattr(full, follow_symlinks=False))
                if style == "unix" and os.fsdecode(_NTACL) in names and os.fsdecode(_POSIX_ACL) not in names:
                    chmod_nofollow(full, _UNIX_DEFAULT)
                    self.report.verbose(f"{os.fsdecode(path)}: only NT permissions, in a unix-style qtree: "
                                        f"mode {_UNIX_DEFAULT:o}")
                elif style == "ntfs" and os.fsdecode(_NTACL) not in names:
                    sd = security.default_descriptor(security.Sid(22, (1, uid)), security.Sid(22, (2, gid)), mode)
                    os.setxattr(full, _NTACL, ntacl.encode(sd), follow_symlinks=False)
                    self.report.verbose(f"{os.fsdecode(path)}: only unix permissions, in an ntfs-style qtree: "
                                        "the default NT ACL")
            except FileNotFoundError:
                continue  # (a name -r removed or renamed since)
            except OSError as exc:
                self.report.warn(f"{os.fsdecode(path)}: the {style}-style qtree's default permissions not set: "
                                 f"{exc.strerror}")

    def close(self, done: bool = True) -> None:
        """Lift the restrictions (and, when the pass is ``done``, apply the security styles' rules)."""
        if self.client is None:
            return
        try:
            if done:
                self._restyle_all()
            if self._restricted:  # (by inode: wherever the files are now; a removed one lost its own)
                try:
                    self.client.unrestrict_inodes(list(self._restricted), self.owner)
                except Exception as exc:  # SnapfsError: the volume went away
                    self.report.warn(f"{self.root}: the client I/O restrictions of this restore "
                                     f"({len(self._restricted)} files) not lifted: "
                                     f"{getattr(exc, 'message', None) or exc}")
        finally:
            self.client.close()
            self.client = None

    def __enter__(self) -> "FilerTarget":
        return self

    def __exit__(self, kind, *exc) -> None:
        self.close(done=kind is None)


def apply_pass5(image: "ImageReader", ex: "Extractor", report: Report, opts: Options, target: str,
                restored: Callable[[int], bool], renames: Renames | None = None) -> None:
    """Put the image's Pass V objects (read by now) on the inodes *restored* under *target*
    (where ``--rename``'s *renames* put them)."""
    names = image.tree.names() if image.pass5 else {}
    if image.pass5 and ex.filer is not None:
        for e in image.pass5:
            if e.kind == Kind.QTREE and names.get(e.owner):
                fields = dict(p.split("=", 1) for p in os.fsdecode(e.value).split(";") if "=" in p)
                if "security-style" in fields:
                    ex.filer.source_styles[os.path.normpath(names[e.owner][0])] = fields["security-style"]
    if image.pass5:
        if renames is not None:
            names = {ino: [renames.moved(p, mark=False) for p in ps] for ino, ps in names.items()}
        FilerObjects(image.pass5, report, opts, ex.filer).apply(target, lambda p: ex.at_or_none(target, p),
                                                                names, restored)


def release_luns(image: "ImageReader", report: Report, opts: Options, target: str,
                 filer: FilerTarget | None = None) -> None:
    """Before the files of *image* are written under *target* on a snapfs volume: every
    LUN there that the image brings again is put under the restore's client I/O
    restriction (*filer*'s) and becomes a plain file (a LUN cannot be truncated, renamed
    aside or replaced through the mount); the image's Pass V makes it a LUN again."""
    if opts.dry_run:
        return
    root = snapfs_root(target)
    if root is None:
        return
    from snapfs import client as _client  # only for a target on snapfs

    with _client.open_volume(root) as client:
        luns = client.lun_list()
        if not luns:
            return
        base = os.path.relpath(os.path.realpath(target), root)
        dumped = image.dumped
        renames = filer.renames if filer is not None else None
        paths = {os.path.normpath(os.path.join(base, os.fsdecode(renames.moved(p, mark=False) if renames else p)))
                 for ino, ps in image.tree.names().items() if ino in dumped and ino not in image.dirs for p in ps}
        for lun in luns:
            if lun.path in paths:
                try:
                    if filer is not None and filer.client is not None:
                        filer.restrict(lun.path)
                    client.lun_release(lun.path)
                    report.verbose(f"LUN {lun.path} made a plain file until the restore makes it a LUN again")
                except Exception as exc:  # SnapfsError: a clone; its restore then fails with one line
                    report.warn(f"LUN {lun.path}: {getattr(exc, 'message', None) or exc}")


def _digest(chunks: Iterable[bytes]) -> tuple[int, bytes]:
    """The length and SHA-256 of bytes given a chunk at a time (a stream compared without
    holding it)."""
    h, n = hashlib.sha256(), 0
    for chunk in chunks:
        h.update(chunk)
        n += len(chunk)
    return n, h.digest()


def stream_xattr(name: bytes) -> bytes:
    return _STREAM_PREFIX + name + _STREAM_SUFFIX


class FilerObjects:
    """Applies (or compares) one image's Pass V entries under a target folder."""

    def __init__(self, entries: list[Entry], report: Report, opts: Options,
                 filer: FilerTarget | None = None) -> None:
        self.entries = entries
        self.report = report
        self.opts = opts
        self.filer = filer

    # -- what the entries add to each inode's xattrs --------------------------------

    def xattrs_of(self, ino: int, *, streams: bool = False) -> list[tuple[bytes, bytes]]:
        """The xattrs Pass V holds for *ino* (NT ACL and others; with *streams*, the
        streams that fit one xattr, as a plain directory keeps them)."""
        out = []
        for e in self.entries:
            if e.owner != ino:
                continue
            if e.kind == Kind.XATTR:
                out.append((e.name, e.value))
            elif e.kind == Kind.NTACL:
                out.append((b"security.NTACL", e.value))
            elif streams and e.kind == Kind.STREAM and len(e.value) <= STREAM_XATTR_MAX:
                out.append((stream_xattr(e.name), e.value + b"\0"))
        return out

    def ignored(self, ino: int) -> frozenset[bytes]:
        """The xattr names a snapfs mount shows for *ino*'s filer records (compared apart)."""
        return frozenset(FILER_XATTRS[Kind(e.kind)] for e in self.entries
                         if e.owner == ino and e.kind in FILER_XATTRS)

    # -- apply ----------------------------------------------------------------------

    def apply(self, target: str, at: Callable[[bytes], str | None], names: dict[int, list[bytes]],
              restored: Callable[[int], bool]) -> None:
        """Apply the entries of restored inodes (*restored*), named by *names* (``./path``)
        and reached through *at* (before the directories get their modes and times: an
        xattr changes only a directory's ctime)."""
        if not self.entries or self.opts.dry_run:
            return
        root = snapfs_root(target)
        client = None
        if root is not None:
            from snapfs import client as _client  # only for a target on snapfs

            client = _client.open_volume(root)
        try:
            self._apply(target, at, names, restored, root, client)
        finally:
            if client is not None:
                client.close()

    def _rel(self, root: str, full: str) -> str:
        return os.path.relpath(os.path.realpath(os.path.dirname(full)), root) + "/" + os.path.basename(full)

    def _apply(self, target, at, names, restored, root, client) -> None:
        plain = client is None
        base = os.path.relpath(os.path.realpath(target), root) if root else ""

        def in_volume(path: bytes) -> str:
            # from the image's name, not the node's: a directory the volume's commands change
            # has its kernel entry dropped, and /proc/self/fd paths through it stop resolving
            return os.path.normpath(os.path.join(base, os.fsdecode(path)))

        done_xattrs: set[int] = set()
        qtree_names: set[str] = set()
        dosnames: dict[str, dict[bytes, bytes]] = {}  # directory -> its entries' 8.3 names, set at once
        image_paths: set[bytes] | None = None  # every name the image gives (streams as files must not meet one)
        # qtrees first (a LUN at a qtree's root needs it), then the rest in image order
        for e in sorted(self.entries, key=lambda e: e.kind != Kind.QTREE):
            ino = e.owner
            paths = names.get(ino)
            if not paths or not restored(ino):
                continue
            path = paths[0]
            full = at(path)
            if full is None:
                continue
            where = os.fsdecode(path)
            try:
                if e.kind in (Kind.XATTR, Kind.NTACL) or (plain and e.kind == Kind.STREAM
                                                            and len(e.value) <= STREAM_XATTR_MAX):
                    if ino in done_xattrs:
                        continue
                    done_xattrs.add(ino)
                    values = self.xattrs_of(ino, streams=plain)
                    for name, value in values:
                        try:
                            os.setxattr(full, name, value, follow_symlinks=False)
                        except OSError as exc:
                            self.report.error(f"{where}: cannot set extended attribute {os.fsdecode(name)}: "
                                              f"{exc.strerror}")
                elif e.kind == Kind.STREAM:
                    if plain:
                        if image_paths is None:
                            image_paths = {p for ps in names.values() for p in ps}
                        self._stream_file(full, where, e, path + b":" + e.name in image_paths)
                    elif isinstance(e.value, Spooled):  # the volume reads it from the spool, in chunks
                        client.stream_write(in_volume(path), os.fsdecode(e.name), e.value.file.name,
                                            e.value.offset, e.value.size)
                    else:
                        with tempfile.NamedTemporaryFile(prefix="pyrestore-stream-") as tmp:
                            tmp.write(e.value)
                            tmp.flush()
                            client.stream_write(in_volume(path), os.fsdecode(e.name), tmp.name)
                elif e.kind == Kind.DOSNAME:
                    child = at(path + b"/" + e.name)
                    if not plain and child is not None and os.path.lexists(child):
                        dosnames.setdefault(in_volume(path), {})[e.name] = e.value
                elif e.kind == Kind.QTREE:
                    top = path.count(b"/") == 1 and os.path.realpath(target) == root
                    if plain or not top:
                        self.report.verbose(f"{where}: qtree information not applied (only to a qtree restored "
                                            "to a volume's root)")
                        continue
                    f = dict(p.split("=", 1) for p in e.value.decode("ascii").split(";"))
                    client.qtree_adopt(os.fsdecode(e.name or os.path.basename(path)), int(f["id"]),
                                       f["security-style"], f["oplocks"])
                    qtree_names.add(in_volume(path))
                elif e.kind == Kind.LUN:
                    rel = in_volume(path) if not plain else ""
                    parent = os.path.dirname(rel)
                    if plain or not (parent in ("", ".") or (parent in qtree_names or self._is_qtree(client, parent))):
                        self.report.verbose(f"{where}: a LUN restored as a plain file (not at the root of a volume "
                                            "or qtree)")
                        continue
                    if self.filer is not None and self.filer.client is not None:
                        self.filer.restrict(rel)  # until the restore ends
                    client.lun_adopt(rel, e.value.decode("ascii"))
                elif e.kind == Kind.JUNCTION and not plain:  # (a plain directory has the link and its xattr)
                    try:
                        client.junction_adopt(in_volume(path), os.fsdecode(e.value))
                    except Exception as exc:  # SnapfsError: the volume is not there any more
                        self.report.warn(f"{where}: {getattr(exc, 'message', None) or exc}: the junction is "
                                         "restored as a symbolic link")
            except Exception as exc:  # SnapfsError, OSError, a bad record: one line, the rest goes on, exit 1
                what = kind_name(e.kind)
                self.report.error(f"{where}: {what} {os.fsdecode(e.name)!s} not restored: "
                                 f"{getattr(exc, 'message', None) or getattr(exc, 'strerror', None) or exc}")
        for rel, short in dosnames.items():
            try:
                client.dosnames_set(rel, short)
            except Exception as exc:  # SnapfsError
                self.report.warn(f"./{rel}: DOS 8.3 names not restored: {getattr(exc, 'message', None) or exc}")

    @staticmethod
    def _is_qtree(client, parent: str) -> bool:
        if "/" in parent.strip("./"):
            return False
        return any(q.name == parent.strip("./") for q in client.qtree_list())

    def _stream_file(self, full: str, where: str, e: Entry, named_by_image: bool) -> None:
        """A stream too large for an xattr, as the file ``FILE:STREAM`` beside its file (with
        ``--streams-as-files``).  It replaces a node of that name the target has (a file is
        overwritten, anything else unlinked first: never written through), but not one the
        image itself brings (``named_by_image``), and never a directory."""
        name = os.fsdecode(e.name)
        if not self.opts.streams_as_files:
            self.report.warn(f"{where}: stream {name} of {len(e.value)} bytes does not fit an "
                             "xattr: not restored (use --streams-as-files to get it as FILE:STREAM)")
            return
        if not name or "/" in name or "\0" in name:
            self.report.error(f"{where}: stream {name!r}: a stream name holds no '/' (a damaged or crafted "
                              "image): not restored")
            return
        side = full + ":" + name  # full's folder is reached through no symbolic link; name has no '/'
        if named_by_image:
            self.report.error(f"{where}: stream {name} not restored as a file: the image has a file named "
                              f"{os.path.basename(where)}:{name} there too")
            return
        fd = open_to_write(side)  # a link, FIFO, device or shared file there: replaced, not written through
        try:
            at = 0
            for chunk in value_chunks(e.value):
                at = write_all(fd, chunk, at)
        except BaseException:
            os.close(fd)
            os.unlink(side)  # no stream file looking whole when it is not
            raise
        os.close(fd)

    # -- compare ---------------------------------------------------------------------

    def compare(self, at: Callable[[bytes], str | None], names: dict[int, list[bytes]],
                differs: Callable[[bytes, str], None]) -> None:
        """``-C``: streams, DOS names, LUN and qtree records against the tree (the xattrs
        are compared with each file's, see :meth:`xattrs_of`)."""
        if not self.entries:
            return
        root = None
        client = None
        for e in self.entries:
            if e.kind not in (Kind.STREAM, Kind.DOSNAME, Kind.LUN, Kind.QTREE, Kind.JUNCTION):
                continue
            paths = names.get(e.owner)
            full = at(paths[0]) if paths else None
            if full is None:
                continue
            if root is None:
                root = snapfs_root(full) or ""
                if root:
                    from snapfs import client as _client

                    client = _client.open_volume(root)
            path = paths[0]
            try:
                if e.kind == Kind.STREAM:
                    if client is not None:
                        disk = _digest(client.stream_chunks(self._rel(root, full), os.fsdecode(e.name)))
                    elif len(e.value) <= STREAM_XATTR_MAX:
                        disk = _digest((os.getxattr(full, stream_xattr(e.name), follow_symlinks=False)[:-1],))
                    else:
                        with open(full + ":" + os.fsdecode(e.name), "rb") as f:
                            disk = _digest(iter(lambda: f.read(CHUNK), b""))
                    if disk != _digest(value_chunks(e.value)):
                        differs(path, f"stream {os.fsdecode(e.name)} differs ({len(e.value)} bytes on tape, "
                                      f"{disk[0]} on disk)")
                elif client is None:
                    continue  # no Samba form: nothing to compare in a plain directory
                elif e.kind == Kind.DOSNAME:
                    child = at(path + b"/" + e.name)
                    st = os.lstat(child) if child else None
                    if st is not None and st.st_nlink > 1 and not os.path.isdir(child):
                        continue  # the mount shows a hard-linked file's first name's only
                    got = os.getxattr(child, _DOSNAME_XATTR, follow_symlinks=False) if child else b""
                    if got != e.value:
                        differs(path + b"/" + e.name, f"DOS name changed from {os.fsdecode(e.value)} on tape to "
                                                      f"{os.fsdecode(got)} on disk")
                elif e.kind == Kind.LUN:
                    lun = client.lun_show(self._rel(root, full))
                    f = dict(p.split("=", 1) for p in e.value.decode("ascii").split(";"))
                    if (lun.ostype, lun.space_reserve, lun.state) != (f["ostype"], f["space-reserve"], f["state"]):
                        differs(path, f"LUN {lun.ostype}/{lun.space_reserve}/{lun.state} on disk, "
                                      f"{f['ostype']}/{f['space-reserve']}/{f['state']} on tape")
                elif e.kind in (Kind.QTREE, Kind.JUNCTION):
                    what = kind_name(e.kind)
                    try:
                        got = os.getxattr(full, FILER_XATTRS[Kind(e.kind)], follow_symlinks=False)
                    except OSError:
                        got = b"none"
                    if got != e.value:
                        differs(path, f"{what} {os.fsdecode(got)} on disk, {os.fsdecode(e.value)} on tape")
            except OSError as exc:
                differs(path, f"{Kind(e.kind).name.lower()} {os.fsdecode(e.name)}: {exc.strerror}")
            except Exception as exc:  # SnapfsError
                differs(path, f"{Kind(e.kind).name.lower()} {os.fsdecode(e.name)}: "
                              f"{getattr(exc, 'message', None) or exc}")
        if client is not None:
            client.close()
