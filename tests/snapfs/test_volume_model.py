"""A hypothesis state machine: the Volume against a plain in-memory model.

Random names, writes, truncates, links, renames, xattrs, snapshot creation
and deletion, close/reopen and fsck; after every step the live tree and every
snapshot's tree must match the model byte for byte and attribute for
attribute, and the space figures must add up.
"""

from __future__ import annotations

import copy
import errno
import shutil
import stat
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from snapfs import RENAME_EXCHANGE, RENAME_NOREPLACE, ROOT_INO, SnapfsError, Volume, fsck

BS = 512
NAMES = st.sampled_from(["a", "b", "c", "d"])


class Model:
    """Inodes by number: kind 'f', 'd' or 'l', perms, data/target, xattrs, entries (dirs)."""

    def __init__(self) -> None:
        self.inodes = {ROOT_INO: {"kind": "d", "perm": 0o755, "xattrs": {}, "entries": {}}}
        #: openers per file: a file unlinked while open lives on, nameless, until its last release
        self.open: dict[int, int] = {}

    def entries(self):
        """(parent, name, ino) of every name in the tree."""
        out = []
        for ino, node in self.inodes.items():
            if node["kind"] == "d":
                out += [(ino, n, c) for n, c in node["entries"].items()]
        return sorted(out)

    def dirs(self):
        return sorted(i for i, n in self.inodes.items() if n["kind"] == "d")

    def files(self):
        return sorted(i for i, n in self.inodes.items() if n["kind"] == "f")

    def nlink(self, ino):
        node = self.inodes[ino]
        if node["kind"] == "d":
            return 2 + sum(1 for c in node["entries"].values() if self.inodes[c]["kind"] == "d")
        return sum(1 for _, _, c in self.entries() if c == ino)

    def is_ancestor(self, anc, ino):
        parents = {c: p for p, _, c in self.entries() if self.inodes[c]["kind"] == "d"}
        while True:
            if ino == anc:
                return True
            if ino == ROOT_INO:
                return False
            ino = parents[ino]

    def drop(self, ino):
        if self.inodes[ino]["kind"] == "d" or (self.nlink(ino) == 0 and not self.open.get(ino)):
            del self.inodes[ino]

    def view(self):
        out = {}

        def walk(ino, path):
            node = self.inodes[ino]
            body = bytes(node["data"]) if node["kind"] == "f" else node.get("target")
            out[path] = (ino, node["kind"], node["perm"], self.nlink(ino), body, dict(node["xattrs"]))
            for n, c in node.get("entries", {}).items():
                walk(c, path + "/" + n)

        walk(ROOT_INO, "")
        return out


def volume_view(vol, snap=None):
    out = {}

    def walk(ino, path):
        a = vol.getattr(ino, snap)
        kind = {stat.S_IFDIR: "d", stat.S_IFREG: "f", stat.S_IFLNK: "l"}[stat.S_IFMT(a.mode)]
        body = vol.read(ino, 0, a.size + 1, snap) if kind == "f" else (
            vol.readlink(ino, snap) if kind == "l" else None)
        if kind == "f":
            assert len(body) == a.size
        xs = {n.decode(): vol.getxattr(ino, n, snap) for n in vol.listxattr(ino, snap)}
        out[path] = (ino, kind, a.mode & 0o7777, a.nlink, body, xs)
        if kind == "d":
            for e in vol.readdir(ino, snap=snap):
                walk(e.attrs.ino, path + "/" + e.name.decode())

    walk(ROOT_INO, "")
    return out


class VolumeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="snapfs-model-"))
        self.vol = Volume.create(self.tmp / "v", 64 << 20, 10_000, block_size=BS)
        self.model = Model()
        self.snaps: dict[str, tuple[int, dict]] = {}
        self.counter = 0

    def teardown(self) -> None:
        if not self.vol.closed:
            self.vol.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def expect_errno(self, code, fn, *a):
        try:
            fn(*a)
        except SnapfsError as e:
            assert e.errno == code, (e, code)
        else:
            raise AssertionError(f"expected errno {code} from {fn.__name__}{a}")

    def _make(self, parent, name, kind, fn):
        if name in self.model.inodes[parent]["entries"]:
            self.expect_errno(errno.EEXIST, fn)
            return
        a = fn()
        node = {"kind": kind, "perm": a.mode & 0o7777, "xattrs": {}}
        if kind == "f":
            node["data"] = bytearray()
        elif kind == "d":
            node["entries"] = {}
        else:
            node["target"] = b"t/" + name.encode()
        self.model.inodes[a.ino] = node
        self.model.inodes[parent]["entries"][name] = a.ino

    @rule(data=st.data(), name=NAMES, kind=st.sampled_from("fdl"))
    def make(self, data, name, kind):
        parent = data.draw(st.sampled_from(self.model.dirs()))
        fn = {"f": lambda: self.vol.create_file(parent, name, 0o640),
              "d": lambda: self.vol.mkdir(parent, name, 0o750),
              "l": lambda: self.vol.symlink(parent, name, "t/" + name)}[kind]
        self._make(parent, name, kind, fn)

    @precondition(lambda self: self.model.files())
    @rule(data=st.data(), off=st.integers(0, 4 * BS), size=st.integers(0, 3 * BS), byte=st.integers(1, 255))
    def write(self, data, off, size, byte):
        ino = data.draw(st.sampled_from(self.model.files()))
        buf = bytes([byte]) * size
        self.vol.write(ino, off, buf)
        d = self.model.inodes[ino]["data"]
        if size:
            if len(d) < off:
                d.extend(bytes(off - len(d)))
            d[off:off + size] = buf

    @precondition(lambda self: self.model.files())
    @rule(data=st.data(), size=st.integers(0, 5 * BS))
    def truncate(self, data, size):
        ino = data.draw(st.sampled_from(self.model.files()))
        self.vol.truncate(ino, size)
        d = self.model.inodes[ino]["data"]
        del d[size:]
        d.extend(bytes(size - len(d)))

    @precondition(lambda self: self.model.entries())
    @rule(data=st.data())
    def remove(self, data):
        parent, name, ino = data.draw(st.sampled_from(self.model.entries()))
        node = self.model.inodes[ino]
        if node["kind"] == "d":
            if node["entries"]:
                self.expect_errno(errno.ENOTEMPTY, self.vol.rmdir, parent, name)
                return
            self.vol.rmdir(parent, name)
        else:
            self.vol.unlink(parent, name)
        del self.model.inodes[parent]["entries"][name]
        self.model.drop(ino)

    @precondition(lambda self: self.model.files())
    @rule(data=st.data(), name=NAMES)
    def link(self, data, name):
        ino = data.draw(st.sampled_from(self.model.files()))
        parent = data.draw(st.sampled_from(self.model.dirs()))
        if not self.model.nlink(ino):  # open but unlinked
            self.expect_errno(errno.ENOENT, self.vol.link, ino, parent, name)
            return
        if name in self.model.inodes[parent]["entries"]:
            self.expect_errno(errno.EEXIST, self.vol.link, ino, parent, name)
            return
        self.vol.link(ino, parent, name)
        self.model.inodes[parent]["entries"][name] = ino

    @precondition(lambda self: self.model.entries())
    @rule(data=st.data(), name=NAMES, flags=st.sampled_from([0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE]))
    def rename(self, data, name, flags):
        m = self.model
        op, on, src = data.draw(st.sampled_from(m.entries()))
        np_ = data.draw(st.sampled_from(m.dirs()))
        dst = m.inodes[np_]["entries"].get(name)
        call = (self.vol.rename, op, on, np_, name, flags)
        sdir = m.inodes[src]["kind"] == "d"
        if flags == RENAME_EXCHANGE:
            if dst is None:
                return self.expect_errno(errno.ENOENT, *call)
            if src == dst:
                return call[0](*call[1:])
            ddir = m.inodes[dst]["kind"] == "d"
            if (sdir and m.is_ancestor(src, np_)) or (ddir and m.is_ancestor(dst, op)):
                return self.expect_errno(errno.EINVAL, *call)
            call[0](*call[1:])
            m.inodes[op]["entries"][on], m.inodes[np_]["entries"][name] = dst, src
            return
        if dst is not None:
            if flags == RENAME_NOREPLACE:
                return self.expect_errno(errno.EEXIST, *call)
            if src == dst:
                return call[0](*call[1:])
            ddir = m.inodes[dst]["kind"] == "d"
            if sdir and not ddir:
                return self.expect_errno(errno.ENOTDIR, *call)
            if not sdir and ddir:
                return self.expect_errno(errno.EISDIR, *call)
            if ddir and m.inodes[dst]["entries"]:
                return self.expect_errno(errno.ENOTEMPTY, *call)
        if sdir and m.is_ancestor(src, np_):
            return self.expect_errno(errno.EINVAL, *call)
        call[0](*call[1:])
        del m.inodes[op]["entries"][on]
        m.inodes[np_]["entries"][name] = src
        if dst is not None:
            m.drop(dst)

    @rule(data=st.data(), perm=st.integers(0, 0o7777))
    def chmod(self, data, perm):
        ino = data.draw(st.sampled_from(sorted(self.model.inodes)))
        self.vol.setattr(ino, mode=perm)
        self.model.inodes[ino]["perm"] = perm

    @rule(data=st.data(), name=st.sampled_from(["user.x", "user.y", "trusted.z"]),
          value=st.binary(max_size=20), remove=st.booleans())
    def xattr(self, data, name, value, remove):
        ino = data.draw(st.sampled_from(sorted(self.model.inodes)))
        xs = self.model.inodes[ino]["xattrs"]
        if remove:
            if name not in xs:
                return self.expect_errno(errno.ENODATA, self.vol.removexattr, ino, name)
            self.vol.removexattr(ino, name)
            del xs[name]
        else:
            self.vol.setxattr(ino, name, value)
            xs[name] = value

    @precondition(lambda self: self.model.files())
    @rule(data=st.data())
    def open(self, data):
        ino = data.draw(st.sampled_from(self.model.files()))
        self.vol.open_file(ino)
        self.model.open[ino] = self.model.open.get(ino, 0) + 1

    @precondition(lambda self: self.model.open)
    @rule(data=st.data())
    def release(self, data):
        ino = data.draw(st.sampled_from(sorted(self.model.open)))
        self.vol.release_file(ino)
        self.model.open[ino] -= 1
        if not self.model.open[ino]:
            del self.model.open[ino]
            self.model.drop(ino)

    @rule()
    def snapshot_create(self):
        name = f"s{self.counter}"
        self.counter += 1
        sid = self.vol.snapshot_create(name).id
        self.snaps[name] = (sid, copy.deepcopy(self.model.view()))

    @precondition(lambda self: self.snaps)
    @rule(data=st.data())
    def snapshot_delete(self, data):
        name = data.draw(st.sampled_from(sorted(self.snaps)))
        self.vol.snapshot_delete(name)
        del self.snaps[name]

    @rule()
    def reopen(self):
        self.vol.close()  # frees the files unlinked while open
        self.vol = Volume.open(self.tmp / "v")
        opened, self.model.open = self.model.open, {}
        for ino in opened:
            self.model.drop(ino)

    @precondition(lambda self: not self.model.open)  # fsck is for a volume nobody uses
    @rule()
    def check_fsck(self):
        report = fsck(self.vol)
        assert report.clean, report.problems

    @invariant()
    def trees_match(self):
        assert volume_view(self.vol) == self.model.view()
        for name, (sid, view) in self.snaps.items():
            assert volume_view(self.vol, sid) == view, name

    @invariant()
    def space_adds_up(self):
        sp = self.vol.space()
        live_blocks = sum(self.vol.getattr(i).blocks for i in self.model.files()) * 512 // BS
        assert sp.live == live_blocks * BS
        assert sp.used == sp.live + sp.snapshots
        excl = sum(s.exclusive_bytes for s in self.vol.snapshot_list())
        assert excl <= sp.snapshots
        if not self.snaps:
            assert sp.snapshots == 0


VolumeMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_volume_matches_model = VolumeMachine.TestCase


class BatchVolumeMachine(VolumeMachine):
    """The same, in batch mode (the mount daemon's): commits fall between any two calls."""

    def __init__(self) -> None:
        super().__init__()
        self.vol.set_batch(True)

    @rule()
    def commit(self):
        self.vol.commit()
        super().space_adds_up()

    def space_adds_up(self):
        """Blocks freed in a batch count as used until its commit (a crash must find
        them untouched), so the figures add up only after one (the daemon commits
        before statfs and df)."""

    @rule()
    def reopen(self):
        super().reopen()
        self.vol.set_batch(True)


BatchVolumeMachine.TestCase.settings = VolumeMachine.TestCase.settings
test_volume_in_batch_mode_matches_model = BatchVolumeMachine.TestCase
