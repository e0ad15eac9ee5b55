"""`make demo`: the main job end to end on the embedded default.

A shelf with two cartridges, a sample tree, two archives written by real GNU
tar through `pyrmt` onto a loopback drive as two tape files, `pymt status`,
then `pymt fsf 1` and real tar reading the second archive back, verified
byte for byte.

Then dump's own job on the same cartridge: a sample tree with xattrs, POSIX
ACLs, hard links and a sparse file lives on a snapfs volume mounted under
./demo-work/mnt; `pydump -0 -u mnt/sample` makes its own
`snapshot_for_backup.N`, reads it straight from the volume's store and
deletes it, as tape file 2; the live tree is changed (a file modified, one
added, one renamed, one deleted), and `pydump -1 -u` does the same as tape
file 3; `pyrestore -r` rebuilds the chain into a fresh folder,
`pyrestore -C` compares the level 1 with its snapshot, and the rebuilt tree is
checked against the source: contents, modes, owners, times, xattrs and ACLs,
hard links and holes.

Then the filer's objects on the same volume (a qtree of ntfs style, a LUN,
DOS attributes in Samba's layout, an 8.3 name), seen with getfattr and the
snapfs commands; the qtree dumped on its own, an xattr too large for the
image's EA record carried in Pass V, and one file restored by direct access
(the file history's seek), with real Samba (as root) showing the file and its
copy alike: 8.3 name, times, DOS attributes and an NT ACL; and NDMP: pyndmpd serves the volume and the shelf, the real
ndmjob backs a snapshot up onto the blank cartridge and restores it (onto the
volume: xattrs of any size), then one file by direct access, and the
restored tree is checked against the snapshot.  The volume is unmounted at
the end, also when a step fails.  Everything lives under ./demo-work (made
afresh each run).
"""

from __future__ import annotations

import contextlib
import filecmp
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.snapfs.samba_fixtures import Samba

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "demo-work"
BIN = Path(sys.executable).parent


def run(*argv: str | Path, show: bool = True, cwd: Path | None = None) -> str:
    """Run a command, echo it like a shell transcript, stop the demo on failure."""
    args = [str(a) for a in argv]
    if show:
        shown = " ".join(a.replace(str(WORK) + "/", "").replace(str(BIN) + "/", "") for a in args)
        if cwd is not None:
            shown = f"(cd {os.path.relpath(cwd, WORK)} && {shown})"
        print("$ " + shown, flush=True)
    done = subprocess.run(args, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd)
    if done.stdout and show:
        print(done.stdout.rstrip())
    if done.returncode != 0:
        print(done.stdout, file=sys.stderr)
        raise SystemExit(f"demo: {args[0]} failed with exit {done.returncode}")
    return done.stdout


def make_tree(root: Path, flavour: str) -> None:
    """A small tree with text, binary, empty and nested files and a symlink."""
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text(f"{flavour}: hello from the demo\n" * 50)
    (root / "docs" / "deep" / "er" / "blob.bin").write_bytes(os.urandom(300_000))
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("docs/readme.txt")


def same_tree(a: Path, b: Path, ignore: list[str] | None = None) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=ignore)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(a / d, b / d, ignore) for d in cmp.common_dirs)


SPARSE_SIZE = 64 * 1024 * 1024


def make_sample(root: Path) -> None:
    """What tar-like copies tend to lose: xattrs (ACLs are set by the caller
    with setfacl, in the transcript), a file with two names, a sparse file."""
    (root / "projects" / "alpha").mkdir(parents=True)
    (root / "shared").mkdir()
    notes = root / "projects" / "alpha" / "notes.txt"
    notes.write_text("alpha: first notes\n" * 40)
    os.setxattr(notes, "user.demo.owner", b"team-alpha")
    os.setxattr(root / "projects", "user.demo.comment", "työn alla".encode())
    os.link(notes, root / "shared" / "notes-link.txt")
    (root / "projects" / "alpha" / "plan.txt").write_text("the plan\n")
    (root / "draft.txt").write_text("a draft, to be renamed\n")
    (root / "old.log").write_text("an old log, to be deleted\n")
    with open(root / "disk.img", "wb") as f:  # 64 MiB with data only at both ends
        f.write(b"boot".ljust(8192, b"\1"))
        f.seek(SPARSE_SIZE - 8192)
        f.write(b"tail".ljust(8192, b"\2"))
    os.chmod(root / "projects" / "alpha" / "plan.txt", 0o640)


def change_sample(root: Path) -> list[str]:
    """Modify, add, rename, delete; the lines saying so."""
    notes = root / "projects" / "alpha" / "notes.txt"
    with open(notes, "a") as f:
        f.write("alpha: a second thought\n")
    (root / "projects" / "beta").mkdir()
    (root / "projects" / "beta" / "todo.txt").write_text("beta: start\n")
    os.setxattr(root / "projects" / "beta" / "todo.txt", "user.demo.owner", b"team-beta")
    os.rename(root / "draft.txt", root / "projects" / "alpha" / "final.txt")
    os.unlink(root / "old.log")
    return ["modified projects/alpha/notes.txt (and so shared/notes-link.txt, its hard link)",
            "added    projects/beta/todo.txt (with an xattr)",
            "renamed  draft.txt -> projects/alpha/final.txt",
            "deleted  old.log"]


def _attributes(root: Path) -> dict[str, tuple]:
    """Per path: type and mode, owner, mtime, xattrs (ACLs included), link partners, size."""
    inodes: dict[int, list[str]] = {}
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel == "restoresymtable":
                continue
            st = os.lstat(full)
            xattrs = tuple(sorted((x, os.getxattr(full, x, follow_symlinks=False))
                                  for x in os.listxattr(full, follow_symlinks=False)))
            # The dump inode keeps times to the microsecond.
            # A directory's size is each file system's own business.
            size = None if stat.S_ISDIR(st.st_mode) else st.st_size
            found[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns // 1000, xattrs, size)
            if not os.path.isdir(full):
                inodes.setdefault(st.st_ino, []).append(rel)
    for names in inodes.values():
        for rel in names:
            found[rel] += (tuple(sorted(names)),)
    return found


def compare_attributes(source: Path, rebuilt: Path) -> list[str]:
    """What differs between two trees, beyond their contents; empty when nothing."""
    a, b = _attributes(source), _attributes(rebuilt)
    problems = [f"only in {source.name}: {p}" for p in sorted(a.keys() - b.keys())]
    problems += [f"only in {rebuilt.name}: {p}" for p in sorted(b.keys() - a.keys())]
    problems += [f"{p}: {a[p]} != {b[p]}" for p in sorted(a.keys() & b.keys()) if a[p] != b[p]]
    return problems


def main() -> int:
    if os.path.ismount(WORK / "mnt"):  # left by an interrupted run
        subprocess.run(["fusermount3", "-u", "-z", str(WORK / "mnt")], capture_output=True)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    # the dumps' file history, contexts and session slots stay in the demo's folder
    os.environ.setdefault("SNAPDUMP_STATE_DIR", str(WORK / "state"))
    shelf = WORK / "shelf"
    nst0 = shelf / "nst0"
    rsh = WORK / "rsh-local"
    # A stand-in for rsh/ssh: ignore the host (and -l user) and run the rmt
    # command here, so tar's remote-tape path is exercised for real.
    rsh.write_text('#!/bin/sh\nshift\n[ "$1" = "-l" ] && shift 2\nexec "$@"\n')
    rsh.chmod(0o755)
    tar_remote = [f"--rsh-command={rsh}", f"--rmt-command={BIN / 'pyrmt'}"]

    print("== a shelf with one drive and two cartridges")
    run(BIN / "pytape", "create", shelf, "--drives", "1", "--slots", "4")
    run(BIN / "pytape", "new", shelf, "DEMO01", "--capacity", "256M")
    run(BIN / "pytape", "new", shelf, "DEMO02", "--capacity", "256M")
    run(BIN / "pytape", "load", shelf, "DEMO01")

    print("\n== two archives written by GNU tar through pyrmt, as tape files 0 and 1")
    make_tree(WORK / "tree-a", "first")
    make_tree(WORK / "tree-b", "second")
    for tree in ("tree-a", "tree-b"):
        run("tar", *tar_remote, "-cf", f"localhost:{nst0}", "-C", WORK / tree, ".")
    run(BIN / "pymt", "-f", nst0, "status")

    print("\n== position at file 1 and read the second archive back")
    run(BIN / "pymt", "-f", nst0, "rewind")
    run(BIN / "pymt", "-f", nst0, "fsf", "1")
    out = WORK / "restored"
    out.mkdir()
    run("tar", *tar_remote, "-xf", f"localhost:{nst0}", "-C", out)
    run(BIN / "pymt", "-f", nst0, "status")
    run(BIN / "pytape", "status", shelf)
    if not same_tree(WORK / "tree-b", out):
        raise SystemExit("demo: the restored tree differs from tree-b")
    print("\ndemo: the second tape file restored byte-identical to tree-b")

    mnt = WORK / "mnt"
    print("\n== a snapfs volume for the sample tree, mounted under demo-work")
    run(BIN / "snapfs", "create", WORK / "vol", "--size", "256M", "--name", "demo")
    mnt.mkdir()
    run(BIN / "snapfs", "mount", WORK / "vol", mnt)
    try:
        dump_chain(nst0, mnt)
        filer_objects(mnt)
        ndmp_backup(shelf, nst0, mnt)
    finally:
        unmount(mnt)
    print("\ndemo: OK")
    return 0


def unmount(mnt: Path) -> None:
    """``snapfs unmount``, also after a failed step; a lazy unmount as the last resort."""
    if not os.path.ismount(mnt):
        return
    print("\n== unmount the volume")
    done = subprocess.run([BIN / "snapfs", "unmount", mnt], capture_output=True, text=True)
    print("$ snapfs unmount mnt")
    if done.returncode != 0:
        print(done.stderr.rstrip(), file=sys.stderr)
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)


def dump_chain(nst0: Path, mnt: Path) -> None:
    """Levels 0 and 1 of a changing tree on a snapfs volume, each dumped from a
    snapshot, as tape files 2 and 3, rebuilt and checked."""
    sample, dumpdates = mnt / "sample", WORK / "dumpdates"
    print("\n== a sample tree with xattrs, ACLs, hard links and a sparse file, on the volume")
    sample.mkdir()
    make_sample(sample)
    run("setfacl", "-m", "u:nobody:rw-,g:100:r--", sample / "projects" / "alpha" / "notes.txt")
    run("setfacl", "-d", "-m", "g:100:r-x", sample / "shared")
    run("getfattr", "-d", "-m", "-", "-R", "--absolute-names", sample / "projects")
    disk = os.stat(sample / "disk.img")
    print(f"disk.img: {disk.st_size >> 20} MiB long, {disk.st_blocks // 2} KiB on disk (holes)")
    # dump compares whole seconds: start the level 0 in a later second than
    # the sample was made, so that the level 1 holds only what changes.
    time.sleep(1 - time.time() % 1)

    print("\n== level 0 as tape file 2, after the tar archives: pydump makes, holds and reads its own snapshot")
    run(BIN / "pymt", "-f", nst0, "eod")
    out = run(BIN / "pydump", "-0", "-u", "-D", dumpdates, "-f", nst0, sample, show=False)
    print(f"$ pydump -0 -u -D dumpdates -f shelf/nst0 mnt/sample")
    print("\n".join(line for line in out.splitlines() if "snapshot" in line or "Pass" in line or "DONE" in line))
    if "snapshot_for_backup." not in out:
        raise SystemExit("demo: pydump did not dump a snapshot_for_backup.N of the volume")

    print("\n== change the tree")
    for line in change_sample(sample):
        print(line)

    print("\n== level 1 as tape file 3: only what changed since the level 0, from a new snapshot of its own")
    run(BIN / "pymt", "-f", nst0, "eod")
    level1 = sample
    out = run(BIN / "pydump", "-1", "-u", "-D", dumpdates, "-f", nst0, sample, show=False)
    print(f"$ pydump -1 -u -D dumpdates -f shelf/nst0 mnt/sample")
    print("\n".join(line for line in out.splitlines() if "snapshot" in line or "level 0 dump" in line
                    or "DONE" in line))
    run("cat", dumpdates)
    snapshots = run(BIN / "snapfs", "snapshot", "list", mnt)
    if "snapshot_for_backup." in snapshots:
        raise SystemExit("demo: a dump left its snapshot_for_backup.N behind")
    run(BIN / "pymt", "-f", nst0, "rewind")
    listing = run(BIN / "pyrestore", "-t", "-s", "4", "-f", nst0)
    run(BIN / "pymt", "-f", nst0, "status")

    print("\n== rebuild the chain in a fresh folder: level 0, then level 1 over it")
    rebuilt = WORK / "rebuilt"
    rebuilt.mkdir()
    run(BIN / "pymt", "-f", nst0, "rewind")
    run(BIN / "pymt", "-f", nst0, "fsf", "2")
    run(BIN / "pyrestore", "-r", "-f", nst0, cwd=rebuilt)
    run(BIN / "pymt", "-f", nst0, "rewind")
    run(BIN / "pyrestore", "-r", "-s", "4", "-f", nst0, cwd=rebuilt)

    print("\n== compare the level 1 image with the source, then the rebuilt tree with the source")
    run(BIN / "pymt", "-f", nst0, "rewind")
    run(BIN / "pyrestore", "-C", "-s", "4", "-f", nst0, "-D", level1)
    run("getfacl", "-p", rebuilt / "projects" / "alpha" / "notes.txt", rebuilt / "shared")
    if not same_tree(sample, rebuilt, ignore=["restoresymtable"]):
        raise SystemExit("demo: the rebuilt tree's contents differ from the source")
    problems = compare_attributes(sample, rebuilt)
    if problems:
        raise SystemExit("demo: the rebuilt tree differs from the source:\n  " + "\n  ".join(problems))
    notes = os.stat(rebuilt / "projects" / "alpha" / "notes.txt")
    link = os.stat(rebuilt / "shared" / "notes-link.txt")
    disk = os.stat(rebuilt / "disk.img")
    names = [line.split("\t", 1)[1] for line in listing.splitlines() if "\t" in line]
    files = [n for n in names if not (sample / n).is_dir()]
    print(f"\ndemo: level 0 and level 1 went on as tape files 2 and 3; the level 1 holds "
          f"{len(files)} names of changed files and all {len(names) - len(files)} directories")
    print("demo: each dump made its own snapshot_for_backup.N, read it straight from the volume's store")
    print("      (not through FUSE), was dated when it froze, and deleted it when done")
    print("demo: pyrestore -C found no difference between the level 1 and its snapshot")
    print("demo: pyrestore -r of the chain gave the source's tree exactly: contents, modes, owners,")
    print("      mtimes, xattrs and access/default ACLs; old.log is gone and draft.txt is final.txt")
    print(f"demo: notes.txt and notes-link.txt are one inode again (links: {notes.st_nlink}, "
          f"same inode: {notes.st_ino == link.st_ino})")
    print(f"demo: disk.img is {disk.st_size >> 20} MiB long and takes {disk.st_blocks // 2} KiB: its holes stayed holes")


def filer_objects(mnt: Path) -> None:
    """A filer's objects on the mounted volume, seen with ordinary tools."""
    from snapfs.windows import dosattrib

    print("\n== the filer's objects: a qtree of ntfs style, a LUN, DOS attributes and an 8.3 name")
    run(BIN / "snapfs", "qtree", "create", mnt, "eng", "--security-style", "ntfs")
    spec = mnt / "eng" / "specification draft.txt"
    spec.write_text("the engine's specification\n")
    os.setxattr(spec, "user.DOSATTRIB", dosattrib.encode(0x20 | 0x1, dosattrib.ns_to_nttime(time.time_ns())))  # ARCHIVE, READONLY
    run(BIN / "snapfs", "lun", "create", mnt, "/eng/lun0", "--size", "8M", "--ostype", "linux")
    run(BIN / "snapfs", "qtree", "list", mnt)
    run(BIN / "snapfs", "lun", "show", mnt, "/eng/lun0")
    run("getfattr", "-d", "-m", "-", "--absolute-names", spec)
    for name in ("trusted.snapfs.qtree_id", "trusted.snapfs.dosname"):
        run("getfattr", "-n", name, "--absolute-names", spec)
    info = dosattrib.decode(os.getxattr(spec, "user.DOSATTRIB"))
    print(f"demo: {spec.name}: DOS attributes 0x{info.attrib:x} (read-only, archive) in Samba's own layout")
    run(BIN / "snapfs", "volume", "show", mnt)

    with samba_serving(mnt) as smb:
        qtree_dump_and_back(mnt, spec, smb)


def qtree_dump_and_back(mnt: Path, spec: Path, smb: "Samba | None") -> None:
    """The ntfs qtree dumped on its own, one file of it restored by direct
    access, and (as root) real Samba showing the file and its copy alike."""
    if smb is not None:
        print("\n== real Samba (smbd on 127.0.0.1 in a network namespace of its own) exports the volume;"
              " smbcacls gives the file an NT ACL")
        smb.run("smbcacls", "eng/specification draft.txt", "--add", "ACL:S-1-5-21-1-2-3-1000:ALLOWED/0x0/READ")
    print("\n== the qtree dumped on its own (qtree scope); what a file's EA record cannot hold goes to Pass V")
    os.setxattr(spec, "user.review", os.urandom(6000))  # more than restore's 4 KiB EA record takes
    image = WORK / "eng.dump"
    out = run(BIN / "pydump", "-0", "-f", image, mnt / "eng", show=False)
    print(f"$ pydump -0 -f eng.dump mnt/eng")
    print("\n".join(line for line in out.splitlines() if "snapshot" in line or "Pass" in line))
    if "dumping (Pass V)" not in out:
        raise SystemExit("demo: the qtree's dump wrote no Pass V")
    print("\n== one file back by direct access: the file history says where it is on the image")
    back = mnt / "eng-restored"  # on the volume: xattrs of any size (an ext4 folder takes 4 KiB)
    back.mkdir()
    out = run(BIN / "pyrestore", "-x", "-v", "-f", image, "./specification draft.txt", cwd=back, show=False)
    print(f"$ cd mnt/eng-restored; pyrestore -x -v -f eng.dump './specification draft.txt'")
    print("\n".join(line for line in out.splitlines() if "records read" in line))
    got = back / "specification draft.txt"
    if got.read_bytes() != spec.read_bytes() or os.getxattr(got, "user.review") != os.getxattr(spec, "user.review") \
            or os.getxattr(got, "user.DOSATTRIB") != os.getxattr(spec, "user.DOSATTRIB"):
        raise SystemExit("demo: the file restored by direct access differs from the volume's")
    print("demo: the file came back with its DOS attributes (EA record) and its 6,000-byte xattr (Pass V)")
    if smb is None:
        return
    print("\n== what Samba shows of the file and of its restored copy")
    seen = []
    for name in ("eng/specification draft.txt", "eng-restored/specification draft.txt"):
        info = [ln for ln in smb.client(f'allinfo "{name}"').splitlines()
                if ln.startswith(("altname:", "create_time:", "write_time:", "attributes:"))]
        acl = [ln for ln in smb.run("smbcacls", name, "--numeric").stdout.splitlines() if ln.startswith("ACL:")]
        print(f"$ smbclient -c 'allinfo \"{name}\"'; smbcacls '{name}'")
        print("\n".join(["  " + ln for ln in info + acl]))
        seen.append((info, acl))
    if seen[0] != seen[1] or not any("S-1-5-21-1-2-3-1000" in ln for ln in seen[1][1]):
        raise SystemExit("demo: Samba shows the restored file otherwise than the original")
    print("demo: Samba shows the same 8.3 name, times, DOS attributes and NT ACL for both")


@contextlib.contextmanager
def samba_serving(mnt: Path) -> "Iterator[Samba | None]":
    """Real smbd exporting the volume as the tests run it (tests/snapfs/samba_fixtures.py);
    None where it cannot run: it takes root for its network namespace."""
    if os.geteuid() != 0 or not shutil.which("smbd"):
        print("\n(Samba's part of the demo is left out: smbd here runs as root in a network namespace of its own)")
        yield None
        return
    from tests.snapfs.samba_fixtures import serving
    with serving(mnt, WORK / "samba") as smb:
        yield smb


def ndmp_backup(shelf: Path, nst0: Path, mnt: Path) -> None:
    """pyndmpd serving the volume and the shelf; the real ndmjob backs a
    snapshot up to the blank cartridge and restores it."""
    ndmjob = "/usr/lib/amanda/ndmjob"
    print("\n== NDMP: pyndmpd serves the volume and the shelf; the real ndmjob drives a backup and a restore")
    run(BIN / "pytape", "unload", shelf)
    run(BIN / "pytape", "load", shelf, "DEMO02")
    run(BIN / "snapfs", "snapshot", "create", mnt, "ndmp0")
    restored = mnt / "ndmp-restored"  # on the volume: xattrs of any size (an ext4 folder takes 4 KiB)
    restored.mkdir()
    server = subprocess.Popen([BIN / "pyndmpd", "--foreground", "--listen", "127.0.0.1:0", "--shelf", shelf,
                               "--volume", mnt, "--volume", WORK, "--dumpdates", WORK / "ndmp-dumpdates"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        assert server.stderr is not None
        for line in server.stderr:
            if "serving NDMP v4 on" in line:
                port = line.split()[-1]
                print(line.rstrip())
                break
        if port is None:
            raise SystemExit("demo: pyndmpd did not start")
        agent = f"127.0.0.1:{port}/4n"
        snap, index = mnt / ".snapshot" / "ndmp0", WORK / "ndmp-index"
        out = run(ndmjob, "-c", "-D", agent, "-f", nst0, "-B", "dump", "-C", snap, "-E", "LEVEL=0",
                  "-I", index, show=False)
        print(f"$ ndmjob -c -D {agent} -f shelf/nst0 -B dump -C mnt/.snapshot/ndmp0 -E LEVEL=0 -I ndmp-index")
        print("\n".join(line for line in out.splitlines() if "OKAY" in line or "DUMP:" in line))
        if 'SESS "Operation ended OKAY"' not in out:
            raise SystemExit("demo: ndmjob's backup did not end OKAY:\n" + out)
        out = run(ndmjob, "-x", "-D", agent, "-f", nst0, "-B", "dump", "-C", restored, "-J", index, "-v",
                  show=False)
        print(f"$ ndmjob -x -D {agent} -f shelf/nst0 -B dump -C mnt/ndmp-restored -J ndmp-index -v")
        if 'SESS "Operation ended OKAY"' not in out:
            raise SystemExit("demo: ndmjob's restore did not end OKAY:\n" + out)
        print("\n".join(line for line in out.splitlines() if "Operation ended" in line or "LOG_FILE messages" in line))
        # one file by direct access: the index's position for it, the mover reads only its records
        one, single = "sample/projects/alpha/plan.txt", WORK / "ndmp-one"
        single.mkdir()
        out = run(ndmjob, "-x", "-D", agent, "-f", nst0, "-B", "dump", "-C", single, "-J", index, one, "-v",
                  show=False)
        print(f"$ ndmjob -x -D {agent} -f shelf/nst0 -B dump -C ndmp-one -J ndmp-index {one} -v")
        read = re.search(r"recover read (\d+) bytes of the image in (\d+) range", out)
        if read is None or 'SESS "Operation ended OKAY"' not in out \
                or (single / one).read_bytes() != (snap / one).read_bytes():
            raise SystemExit("demo: ndmjob's direct access restore of one file failed:\n" + out)
        print("\n".join(line for line in out.splitlines() if "Operation ended" in line or "LOG_FILE messages" in line))
        print(f"  pyndmpd: recover read {int(read.group(1)):,} bytes of the image in {read.group(2)} range(s)")
    finally:
        server.terminate()
        server.wait(10)
    run(BIN / "pymt", "-f", nst0, "rewind")
    listing = run(BIN / "pyrestore", "-t", "-f", nst0, show=False)
    print(f"$ pyrestore -t -f shelf/nst0   # the NDMP image is a plain dump image: {len(listing.splitlines())} lines")
    if not same_tree(snap / "sample", restored / "sample", ignore=["restoresymtable"]):
        raise SystemExit("demo: the tree ndmjob restored differs from the snapshot")
    problems = compare_attributes(snap / "sample", restored / "sample")
    if problems:
        raise SystemExit("demo: the tree ndmjob restored differs from the snapshot:\n  " + "\n  ".join(problems))
    print("demo: ndmjob's level 0 of snapshot ndmp0 went to DEMO02 through pyndmpd, and its restore")
    print("      gave the snapshot's tree exactly: contents, modes, owners, mtimes, xattrs and ACLs")


if __name__ == "__main__":
    raise SystemExit(main())
