"""Pass V (issue 13): what a file's 4 KiB EA record cannot carry goes in one record after the last
file -- a 1,024-ACE NT ACL, streams stored as data, DOS 8.3 names, LUN and qtree records -- and
comes back: a volume dumped at levels 0 and 1 and restored into a fresh volume has the same
snapfs-visible state (every object and attribute, :func:`filer_state`); the real Linux restore
reads the same images (-t, -r, -C) with exit 0 and one "unexpected inode extension" line; a plain
directory gets Samba's xattrs, a stream too large for one as FILE:STREAM only when asked."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, snapfs, unmount_and_check  # noqa: F401

from dumptool.format import RecordType
from dumptool.format.pass5 import EXT_PASS5, Kind, unpack_pass5
from dumptool.format.walk import assemble_file, walk_image
from snapfs import Volume, client
from snapfs.windows import NTACL_XATTR, dosattrib, ntacl, security

pytestmark = pytest.mark.fuse

BIN = Path(sys.executable).parent
PYDUMP, PYRESTORE, RESTORE = str(BIN / "pydump"), str(BIN / "pyrestore"), "/sbin/restore"
UNEXPECTED = "unexpected inode extension 21326, skipping"


def run(*cmd, cwd: Path | None = None, ok: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([*map(str, cmd)], capture_output=True, cwd=cwd, stdin=subprocess.DEVNULL, timeout=120, **kw)
    if ok:
        assert r.returncode == 0, (cmd, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
    return r


def mount(tmp_path: Path, name: str) -> Mounted:
    voldir, mnt = tmp_path / name, tmp_path / f"{name}-mnt"
    mnt.mkdir()
    Volume.create(voldir, 128 << 20, 2000, name=name).close()  # 4 KiB blocks, 64 KiB of xattrs a file
    snapfs("mount", voldir, mnt, "-o", "allow_other")
    os.chmod(mnt, 0o755)
    return Mounted(voldir, mnt)


def sd(n: int, base: int = 1000) -> bytes:
    aces = tuple(security.Ace(0, 0, 0x1200A9, security.Sid(5, (21, 7, 8, 9, base + i))) for i in range(n))
    return ntacl.encode(security.Descriptor(security.Sid(5, (21, 7, 8, 9, 500)), security.Sid(5, (32, 544)),
                                            security.Acl(2, aces)))


def stream(m: Path, path: str, name: str, data: bytes, tmp: Path) -> None:
    src = tmp / "stream.src"
    src.write_bytes(data)
    with client.open_volume(m) as c:
        c.stream_write(path, name, str(src))


def build(m: Path, tmp: Path) -> None:
    snapfs("qtree", "create", m, "qu", "--security-style", "unix")
    snapfs("qtree", "create", m, "qn", "--security-style", "ntfs", "--oplocks", "disable")
    snapfs("qtree", "create", m, "qm", "--security-style", "mixed")
    snapfs("lun", "create", m, "qu/lun0", "--size", "1M", "--ostype", "linux")
    with open(m / "qu" / "lun0", "r+b") as f:
        f.seek(300_000)
        f.write(b"lun data" * 100)
    snapfs("snapshot", "create", m, "base")
    snapfs("lun", "clone", m, "base", "qu/lun0", "qu/lun1")
    (m / "qn" / "win").mkdir()
    doc = m / "qn" / "win" / "big.doc"
    doc.write_bytes(b"a document\n" * 500)
    os.setxattr(doc, NTACL_XATTR, sd(1024))
    os.setxattr(m / "qn" / "win", NTACL_XATTR, sd(1024, 5000))  # a directory's too
    os.setxattr(doc, "user.DOSATTRIB", dosattrib.encode(0x22, 132_000_000_000_000_000))
    os.setxattr(doc, "user.DosStream.s10:$DATA", b"ten bytes!\0")
    stream(m, "qn/win/big.doc", "s64k", os.urandom(64 * 1024), tmp)
    stream(m, "qn/win/big.doc", "s5m", os.urandom(5 << 20), tmp)
    # 8.3 names a restore would not make again by itself: ~1 freed, then taken by a later name
    d = m / "qm" / "names"
    d.mkdir()
    for n in ("specification-a.htm", "specification-b.htm"):
        (d / n).write_text(n)
    os.unlink(d / "specification-a.htm")
    (d / "specification-c.htm").write_text("c")
    # hard links, holes, POSIX ACLs
    with open(m / "qm" / "holey", "wb") as f:
        f.write(b"head")
        f.seek(3 << 20)
        f.write(b"tail")
    os.link(m / "qm" / "holey", m / "qm" / "holey-link")
    (m / "acl.txt").write_text("acl\n")
    run("setfacl", "-m", "u:1234:rw,g:55:r", m / "acl.txt")
    run("setfacl", "-d", "-m", "u:77:rx", m / "qm")
    (m / "zlast.txt").write_text("the last file\n")


def filer_state(m: Path) -> dict:
    """Everything snapfs shows of a volume: per path its type, mode, owner, size, mtime, data (by hash;
    holes by st_blocks), link target, every xattr, DOS name, streams; hard-link groups; qtrees; LUNs."""
    out: dict = {}
    inos: dict[int, list[str]] = {}
    with client.open_volume(m) as c:
        for top, dirs, files in os.walk(m):
            if top == str(m):
                dirs.remove(".snapshot") if ".snapshot" in dirs else None
            for name in sorted(dirs + files):
                p = os.path.join(top, name)
                rel = os.path.relpath(p, m)
                st = os.lstat(p)
                e = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid, "mtime": st.st_mtime_ns // 1000,
                     "dosname": os.getxattr(p, "trusted.snapfs.dosname", follow_symlinks=False)}
                e["xattrs"] = {n: os.getxattr(p, n, follow_symlinks=False) for n in os.listxattr(p, follow_symlinks=False)
                               if n != "trusted.snapfs.lun"}
                if stat.S_ISREG(st.st_mode):
                    e["size"] = st.st_size
                    if "trusted.snapfs.lun" not in os.listxattr(p):  # a clone comes back with blocks of its own
                        e["blocks"] = st.st_blocks
                    e["data"] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                    inos.setdefault(st.st_ino, []).append(rel)
                if stat.S_ISLNK(st.st_mode):
                    e["target"] = os.readlink(p)
                if not stat.S_ISLNK(st.st_mode):
                    e["streams"] = {s.get("name"): (s["size"], hashlib.sha256(c.stream_read(rel, s["name"])).hexdigest())
                                    for s in c.stream_list(rel)}
                out[rel] = e
        out["(links)"] = sorted(sorted(v) for v in inos.values() if len(v) > 1)
        out["(qtrees)"] = [(q.id, q.name, q.security_style, q.oplocks) for q in c.qtree_list()]
        out["(luns)"] = sorted((x.path, x.size, x.ostype, x.space_reserve, x.state) for x in c.lun_list())
    return out


def pass5_of(image: Path) -> tuple[int, list]:
    """The carrier inode and entries of an image's Pass V record (read with the format package)."""
    data = image.read_bytes()
    records = list(walk_image(data))
    for i, rec in enumerate(records):
        if rec.header.c_extattributes == EXT_PASS5:
            parts = [rec] + [r for r in records[i + 1:i + 100] if r.header.c_type == RecordType.TS_ADDR and r.header.c_inumber ==
                             rec.header.c_inumber]
            return rec.header.c_inumber, unpack_pass5(assemble_file(parts))
    return 0, []


def test_a_volume_with_every_filer_object_dumped_0_and_1_comes_back_the_same(tmp_path):
    src, dst = mount(tmp_path, "src"), mount(tmp_path, "dst")
    scratch = tmp_path / "scratch"  # tmpfs: xattrs of any size, and no ext4 inode flags for restore -C
    scratch.mkdir()
    run("mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", scratch)
    plain, real = scratch / "plain", scratch / "real"
    plain.mkdir()
    try:
        m = src.mnt
        build(m, tmp_path)
        time.sleep(1.05)  # (what changed in the second of the level 0 would be dumped again at level 1)
        dd = tmp_path / "dumpdates"
        l0, l1 = tmp_path / "l0", tmp_path / "l1"
        r = run(PYDUMP, "-0", "-u", "-D", dd, "-f", l0, m)
        assert b"(Pass V) [ACLs, streams and filer records" in r.stderr
        assert b"not dumped" not in r.stderr, r.stderr  # no xattr lost any more
        carrier, entries = pass5_of(l0)
        kinds = {Kind(e.kind) for e in entries}
        assert kinds == {Kind.NTACL, Kind.STREAM, Kind.DOSNAME, Kind.LUN, Kind.QTREE}, kinds
        assert sorted(len(e.value) for e in entries if e.kind == Kind.STREAM) == [64 * 1024, 5 << 20]
        assert sum(e.kind == Kind.QTREE for e in entries) == 3 and sum(e.kind == Kind.LUN for e in entries) == 2
        assert all(b"backing" not in e.value for e in entries if e.kind == Kind.LUN)  # the clone: independent
        time.sleep(1.05)
        # level 1: a stream rewritten, a new file with a big ACL, a rename
        stream(m, "qn/win/big.doc", "s64k", b"v2" * 40_000, tmp_path)
        (m / "qm" / "new.txt").write_text("new\n")
        os.setxattr(m / "qm" / "new.txt", NTACL_XATTR, sd(1000, 9000))
        os.rename(m / "acl.txt", m / "qm" / "acl-moved.txt")
        with open(m / "qu" / "lun0", "r+b") as f:  # a LUN written: dumped again, restored over the old one
            f.write(b"new lun data")
        run(PYDUMP, "-1", "-u", "-D", dd, "-f", l1, m)
        assert {Kind(e.kind) for e in pass5_of(l1)[1]} >= {Kind.NTACL, Kind.STREAM}
        want = filer_state(m)

        # into a fresh volume: the same snapfs-visible state
        for image in (l0, l1):
            r = run(PYRESTORE, "-r", "-y", "-f", image, cwd=dst.mnt, env=dict(os.environ, TMPDIR=str(tmp_path)))
            assert b"not restored" not in r.stderr, r.stderr
        os.unlink(dst.mnt / "restoresymtable")
        got = filer_state(dst.mnt)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == want[k], k
        r = run(PYRESTORE, "-C", "-f", l1, "-D", dst.mnt, ok=False)
        assert r.returncode == 0, r.stdout + r.stderr
        stream(dst.mnt, "qn/win/big.doc", "s5m", b"changed", tmp_path)  # -C compares the streams too
        r = run(PYRESTORE, "-C", "-f", l1, "-D", dst.mnt, ok=False)
        assert r.returncode == 2 and b"./qn/win/big.doc: stream s5m differs" in r.stderr + r.stdout, r.stdout + r.stderr

        # the real restore: -t silent, -r and -C one line per image, exit 0
        real.mkdir()
        for image in (l0, l1):
            t = run(RESTORE, "-t", "-f", image)
            assert b"extension" not in t.stderr
            r = run(RESTORE, "-r", "-y", "-f", image, cwd=real, env=dict(os.environ, TMPDIR=str(tmp_path)))
            assert r.stderr.decode().count(UNEXPECTED) == 1, r.stderr
        assert (real / "qn" / "win" / "big.doc").read_bytes() == (m / "qn" / "win" / "big.doc").read_bytes()
        assert os.getxattr(real / "qn" / "win" / "big.doc", "user.DOSATTRIB") == \
            os.getxattr(m / "qn" / "win" / "big.doc", "user.DOSATTRIB")
        # -D relative: restore keeps at most 63 bytes of it (NAMELEN), and pytest's own paths are longer
        c = run(RESTORE, "-C", "-f", l1, "-D", ".", cwd=real, ok=False)
        assert c.returncode == 0 and c.stderr.decode().count(UNEXPECTED) == 1, c.stdout + c.stderr

        # a plain directory: Samba's xattrs; the streams too big for one with --streams-as-files only
        r = run(PYRESTORE, "-x", "-y", "-f", l0, cwd=plain)
        doc = plain / "qn" / "win" / "big.doc"
        assert os.getxattr(doc, NTACL_XATTR) == os.getxattr(m / "qn" / "win" / "big.doc", NTACL_XATTR)
        assert os.getxattr(plain / "qn" / "win", NTACL_XATTR) == sd(1024, 5000)
        assert os.getxattr(doc, "user.DosStream.s10:$DATA") == b"ten bytes!\0"
        assert r.stderr.count(b"does not fit an xattr: not restored (use --streams-as-files") == 2, r.stderr
        assert not (plain / "qn" / "win" / "big.doc:s5m").exists()
        run(PYRESTORE, "-x", "-u", "-y", "--streams-as-files", "-f", l0, cwd=plain)
        with client.open_volume(m) as cl:
            assert (plain / "qn" / "win" / "big.doc:s5m").read_bytes() == cl.stream_read("qn/win/big.doc", "s5m")
    finally:
        subprocess.run(["umount", str(scratch)], capture_output=True)
        unmount_and_check((src, dst), (src, dst))


def run_peak(*cmd, cwd: Path | None = None, env: dict | None = None) -> tuple[subprocess.CompletedProcess, int]:
    """:func:`run`, and the command's peak resident set size in bytes (its own, from wait4)."""
    with open(os.devnull, "rb") as null, \
            subprocess.Popen([*map(str, cmd)], stdin=null, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=cwd, env=env) as p:
        # the pipes read on threads, the child reaped here: its rusage is its own
        out: dict[str, bytes] = {}
        readers = [threading.Thread(target=lambda k, f: out.__setitem__(k, f.read()), args=(k, f))
                   for k, f in (("out", p.stdout), ("err", p.stderr))]
        for t in readers:
            t.start()
        _, status, usage = os.wait4(p.pid, 0)
        for t in readers:
            t.join()
        p.returncode = os.waitstatus_to_exitcode(status)
    r = subprocess.CompletedProcess(cmd, p.returncode, out["out"], out["err"])
    assert r.returncode == 0, (cmd, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
    return r, usage.ru_maxrss * 1024


def test_a_256_mib_stream_goes_through_pass_v_in_bounded_memory(tmp_path):
    """Pass V streams both ways: a 256 MiB named stream is dumped (read from the snapshot in
    chunks, written as it is read) and restored into a fresh volume (spooled in chunks, the volume
    reading it from the spool) byte for byte, pydump's and pyrestore's peak RSS far below the
    stream's size; a direct-access -x of its file alone gets it too (as FILE:STREAM, written in
    chunks), and the real restore passes over the record."""
    size = 256 << 20
    src, dst = mount(tmp_path, "src"), mount(tmp_path, "dst")
    try:
        m = src.mnt
        (m / "big.doc").write_bytes(b"the file with the big stream\n")
        (m / "zlast.txt").write_text("the carrier\n")
        raw = tmp_path / "stream.src"  # sparse but for a few marks: quick to make, and each offset checked
        with open(raw, "wb") as f:
            for at in range(0, size, 32 << 20):
                f.seek(at + 12345)
                f.write(os.urandom(4096))
            f.truncate(size)
        want = hashlib.sha256()
        with open(raw, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                want.update(chunk)
        with client.open_volume(m) as c:
            c.stream_write("big.doc", "huge", str(raw))
        raw.unlink()
        env = dict(os.environ, TMPDIR=str(tmp_path))
        image = tmp_path / "big.dump"
        r, dump_peak = run_peak(PYDUMP, "-0", "-f", image, m, env=env)
        assert b"(Pass V) [ACLs, streams and filer records: 1 stream]" in r.stderr, r.stderr
        assert image.stat().st_size > size
        r, restore_peak = run_peak(PYRESTORE, "-r", "-y", "-f", image, cwd=dst.mnt, env=env)
        assert b"not restored" not in r.stderr, r.stderr
        got = hashlib.sha256()
        with client.open_volume(dst.mnt) as c:
            assert [(s["name"], s["size"]) for s in c.stream_list("big.doc")] == [("huge", size)]
            for chunk in c.stream_chunks("big.doc", "huge"):
                got.update(chunk)
        assert got.hexdigest() == want.hexdigest()
        assert not list(tmp_path.glob("pyrestore-*"))  # the spool is gone
        # direct access: the file alone, its stream from Pass V (the file history's seek to it)
        plain = tmp_path / "plain"
        plain.mkdir()
        r, dar_peak = run_peak(PYRESTORE, "-x", "-y", "--streams-as-files", "-f", image, "./big.doc",
                               cwd=plain, env=env)
        assert not (plain / "zlast.txt").exists()
        side = hashlib.sha256()
        with open(plain / "big.doc:huge", "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                side.update(chunk)
        assert side.hexdigest() == want.hexdigest()
        _, base = run_peak(PYRESTORE, "-t", "-f", image, env=env)  # the interpreter and the directories
        print(f"peak RSS: pydump {dump_peak >> 20} MiB, pyrestore -r {restore_peak >> 20} MiB, "
              f"-x {dar_peak >> 20} MiB, -t {base >> 20} MiB (a {size >> 20} MiB stream)")
        for peak in (dump_peak, restore_peak, dar_peak):  # (1,064 and 925 MiB when Pass V was held whole)
            assert peak < base + (64 << 20), (dump_peak, restore_peak, dar_peak, base)
        # the real restore: -t silent, -r one line
        t = run(RESTORE, "-t", "-f", image)
        assert b"extension" not in t.stderr
        real = tmp_path / "real"
        real.mkdir()
        r = run(RESTORE, "-r", "-y", "-f", image, cwd=real, env=env)
        assert r.stderr.decode().count(UNEXPECTED) == 1, r.stderr
        assert (real / "zlast.txt").read_text() == "the carrier\n"
    finally:
        unmount_and_check((src, dst), (src, dst))


def test_streams_as_files_never_write_through_a_name_or_over_the_images_own_files(tmp_path):
    """``--streams-as-files`` writes ``FILE:STREAM`` beside its file: a stream name with '/' (a
    crafted image) is refused, not followed through a symbolic link out of the target; a file
    the image itself names ``FILE:STREAM`` is kept, not overwritten by the stream; a hard link at
    that name in the target is replaced, not written through (the file outside stays)."""
    src = mount(tmp_path, "src")
    outside, plain = tmp_path / "outside", tmp_path / "plain"
    outside.mkdir()
    plain.mkdir()
    try:
        m = src.mnt
        (m / "f").write_bytes(b"f\n")
        os.symlink(outside, m / "f:s")  # the crafted name s/pwn would go through it
        stream(m, "f", "sXpwn", os.urandom(100_000), tmp_path)
        (m / "g").write_bytes(b"g\n")
        (m / "g:notes").write_bytes(b"precious data\n")  # a file of the image, named as g's stream would be
        stream(m, "g", "notes", os.urandom(70_000), tmp_path)
        (m / "k").write_bytes(b"k\n")
        k_stream = os.urandom(70_000)
        stream(m, "k", "st", k_stream, tmp_path)
        image = tmp_path / "l0.dump"
        run(PYDUMP, "-0", "-f", image, m)
        data = image.read_bytes()
        assert data.count(b"sXpwn") == 1
        image.write_bytes(data.replace(b"sXpwn", b"s/pwn"))  # (Pass V's values carry no checksum)
        (outside / "pwn").write_bytes(b"kept\n")
        (outside / "keep").write_bytes(b"outside\n")
        os.link(outside / "keep", plain / "k:st")  # a hard link into the target, at the stream's name

        r = run(PYRESTORE, "-x", "-y", "--streams-as-files", "-f", image, cwd=plain, ok=False)
        err = r.stderr.decode()
        assert r.returncode == 1, err
        assert (outside / "pwn").read_bytes() == b"kept\n"
        assert "stream 's/pwn': a stream name holds no '/'" in err, err
        assert (plain / "g:notes").read_bytes() == b"precious data\n"
        assert "stream notes not restored as a file: the image has a file named g:notes there too" in err, err
        assert (outside / "keep").read_bytes() == b"outside\n"
        assert (plain / "k:st").read_bytes() == k_stream and os.stat(plain / "k:st").st_nlink == 1
    finally:
        unmount_and_check((src,), (src,))
