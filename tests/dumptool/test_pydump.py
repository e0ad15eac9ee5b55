"""pydump, judged by the real Linux restore 0.4b47 (``-t``, ``-r``, ``-C``, ``-M``)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, console_script
from dumptool.format import TP_BSIZE, RecordType, parse_inode_map, walk_image
from samples import (  # noqa: F401  (DATE, RESTORE, listing, restore, tape_copy: also for test_chain and friends)
    DATE,
    RESTORE,
    fake_rsh,
    listing,
    plant_common_files,
    restore_both_cartridges,
    stamp_times,
    tape_copy,
    xattrs,
)
from samples import real_restore as restore
from tapelib import Shelf, open_device

is_root = os.geteuid() == 0

pytestmark = pytest.mark.skipif(not os.access(RESTORE, os.X_OK), reason="real /sbin/restore not installed")


# -- helpers ---------------------------------------------------------------------------


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), e.get("PYTHONPATH")]))
    e.pop("TAPE", None)
    return e


def pydump(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([console_script("pydump"), *args], capture_output=True, env=env(),
                            stdin=subprocess.DEVNULL, timeout=300, **kwargs)
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result


def pyrestore(*args: str, cwd: Path, stdin: str = "", check: bool = False) -> subprocess.CompletedProcess:
    """Run pyrestore in ``cwd`` with ``stdin`` as its answers (text out); ``check``: it must succeed."""
    done = subprocess.run([console_script("pyrestore"), *args], cwd=cwd, capture_output=True, text=True,
                          env=env(), input=stdin, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def pyrestore_into(out: Path, *args: str | Path) -> Path:
    """``pyrestore -r ARGS`` into the new folder ``out`` (returned); it must succeed."""
    out.mkdir()
    pyrestore("-r", *map(str, args), cwd=out, check=True)
    return out


def make_tree(root: Path) -> None:
    """Every file type restore knows, with holes, links, xattrs, ACLs and odd names."""
    plant_common_files(root, sparse_size=4 * 1024 * 1024)
    (root / "emptydir").mkdir()
    (root / "ünïcødé-名前.txt").write_bytes("utf-8 name\n".encode())
    (root / ("L" * 254)).write_bytes(b"long name\n")
    if is_root:
        os.mknod(root / "chardev", 0o620 | stat.S_IFCHR, os.makedev(4, 5))
        os.mknod(root / "blkdev", 0o660 | stat.S_IFBLK, os.makedev(259, 300))
        os.chown(root / "hello.txt", 1234, 5678)
        os.chown(root / "dir2", 4321, 8765)
    os.chmod(root / "dir1" / "sub" / "file", 0o4755)
    os.chmod(root / "dir1" / "big.bin", 0o2640)
    os.chmod(root / "emptydir", 0o1777)
    os.setxattr(root / "hello.txt", "user.foo", b"bar")
    os.setxattr(root / "dir2", "user.note", b"a directory xattr")
    subprocess.run(["setfacl", "-m", "u:1234:rw", str(root / "hello.txt")], check=True)
    subprocess.run(["setfacl", "-d", "-m", "u:77:rx", str(root / "dir2")], check=True)
    stamp_times(root)


def assert_same_tree(src: Path, out: Path, *, times: bool = True) -> None:
    links: dict[int, int] = {}
    src_names = sorted(p.relative_to(src) for p in src.rglob("*"))
    out_names = sorted(p.relative_to(out) for p in out.rglob("*") if p.name != "restoresymtable")
    assert src_names == out_names
    for rel in [Path("."), *src_names]:
        sp, op = src / rel, out / rel
        s, o = os.lstat(sp), os.lstat(op)
        assert stat.S_IFMT(s.st_mode) == stat.S_IFMT(o.st_mode), rel
        assert (s.st_uid, s.st_gid) == (o.st_uid, o.st_gid), rel
        if stat.S_ISLNK(s.st_mode):
            assert os.readlink(sp) == os.readlink(op), rel
            continue
        assert s.st_mode == o.st_mode, rel
        assert xattrs(sp) == xattrs(op), rel
        if times and rel != Path("."):
            assert s.st_mtime_ns // 1000 == o.st_mtime_ns // 1000, rel
        if stat.S_ISREG(s.st_mode):
            assert sp.read_bytes() == op.read_bytes(), rel
            assert links.setdefault(s.st_ino, o.st_ino) == o.st_ino, f"hard link broken at {rel}"
        elif stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
            assert s.st_rdev == o.st_rdev, rel


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    return src


# -- level 0 ---------------------------------------------------------------------------


def test_level_0_lists_restores_and_compares_with_every_attribute(tmp_path: Path, tree: Path) -> None:
    image = tmp_path / "l0.dump"
    result = pydump("-0", "-L", "mylabel", "-f", str(image), str(tree))
    err = result.stderr.decode()
    for line in ("  DUMP: Date of this level 0 dump: ", f"  DUMP: Dumping {tree} ", "  DUMP: Label: mylabel",
                 "  DUMP: mapping (Pass I) [regular files]", "  DUMP: estimated ", "  DUMP: DUMP IS DONE"):
        assert line in err, err
    assert "Traceback" not in err

    listed = restore("-t", "-f", str(image), cwd=tmp_path, tmp=tmp_path)
    names = listing(listed.stdout)
    expected = {"."} | {f"./{p.relative_to(tree)}" for p in tree.rglob("*")}
    assert set(names) == expected
    assert names["."] == 2
    assert names["./hello.txt"] == names["./dir2/hardlink"]
    assert "Label: mylabel" in listed.stdout + listed.stderr

    out = tmp_path / "out"
    out.mkdir()
    restore("-r", "-y", "-f", str(image), cwd=out, tmp=tmp_path)
    assert_same_tree(tree, out)
    assert os.stat(out / "sparse").st_blocks * 512 < 64 * 1024, "holes were not kept"
    assert os.stat(out / "dir1" / "big.bin").st_size == 614_500

    # restore copies -D into its 64-byte c_filesys: keep it short (relative)
    compared = restore("-C", "-D", "src", "-f", str(image), cwd=tmp_path, tmp=tmp_path, check=False)
    assert compared.returncode == 0, compared.stdout + compared.stderr


def test_image_is_whole_records_with_maps_and_root_first(tmp_path: Path, tree: Path) -> None:
    image = tmp_path / "l0.dump"
    pydump("-0", "--quiet", "-b", "32", "-f", str(image), str(tree))
    data = image.read_bytes()
    assert len(data) % (32 * TP_BSIZE) == 0
    records = list(walk_image(data))
    assert [r.header.c_type for r in records[:3]] == [RecordType.TS_TAPE, RecordType.TS_CLRI, RecordType.TS_BITS]
    assert records[0].header.c_ntrec == 32 and records[0].header.c_ddate == 0
    assert records[3].header.c_inumber == 2
    in_use = parse_inode_map(b"".join(records[1].blocks))
    dumped = parse_inode_map(b"".join(records[2].blocks))
    assert dumped == in_use and 2 in dumped
    assert records[-1].header.c_type == RecordType.TS_END


def test_quiet_prints_nothing_and_stdout_output_pipes_into_restore(tmp_path: Path, tree: Path) -> None:
    result = pydump("-0", "--quiet", "-f", "-", str(tree))
    assert result.stderr == b""
    listed = subprocess.run([RESTORE, "-t", "-f", "-"], input=result.stdout, capture_output=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "./dir1/big.bin" in listing(listed.stdout.decode())


# -- incrementals ------------------------------------------------------------------------


def test_level_0_then_1_restored_in_order_gives_the_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    time.sleep(1.1)  # changes in the base dump's own second are dumped again (ctime >= base date)
    dumpdates = tmp_path / "dd" / "dumpdates"
    pydump("-0", "-u", "-D", str(dumpdates), "-f", str(tmp_path / "l0.dump"), str(src))
    assert dumpdates.read_text().startswith(f"{src} 0 ")
    time.sleep(1.1)
    os.rename(src / "hello.txt", src / "dir1" / "hello-renamed")       # rename (hard-linked too)
    os.rename(src / "dir1" / "sub", src / "dir2" / "moved-sub")         # a directory moves
    os.unlink(src / "empty")                                            # deletion
    shutil.rmtree(src / "emptydir")                                     # directory deletion
    (src / "dir2" / "new.txt").write_bytes(b"new\n")                   # a new file
    (src / "dir1" / "big.bin").write_bytes(b"shrunk\n")                # a changed file
    os.unlink(src / "fifo")
    (src / "fifo").mkdir()                                              # a file replaced by a directory
    (src / "fifo" / "inside").write_bytes(b"x\n")
    pydump("-1", "-u", "-D", str(dumpdates), "-f", str(tmp_path / "l1.dump"), str(src))
    assert [line.split()[1] for line in dumpdates.read_text().splitlines()] == ["0", "1"]

    listed = listing(restore("-t", "-f", str(tmp_path / "l1.dump"), cwd=tmp_path, tmp=tmp_path).stdout)
    assert "./sparse" not in listed and "./dir2/new.txt" in listed and "./dir2/moved-sub" in listed
    assert "./dir2/moved-sub/file" not in listed  # unchanged, only its directory moved

    out = tmp_path / "out"
    out.mkdir()
    restore("-r", "-y", "-f", str(tmp_path / "l0.dump"), cwd=out, tmp=tmp_path)
    restore("-r", "-y", "-f", str(tmp_path / "l1.dump"), cwd=out, tmp=tmp_path)
    assert_same_tree(src, out, times=False)


def test_incremental_without_a_level_0_is_refused(tmp_path: Path, tree: Path) -> None:
    result = pydump("-1", "-D", str(tmp_path / "dumpdates"), "-f", str(tmp_path / "x.dump"), str(tree), check=False)
    assert result.returncode == 1
    err = result.stderr.decode().strip()
    assert err.count("\n") == 0 and f"no level-0 dump of {tree}: run a level 0 first" in err


def test_dash_T_gives_the_base_date(tmp_path: Path, tree: Path) -> None:
    time.sleep(1.1)
    base = time.ctime()  # whole seconds: later than every ctime in the tree
    (tree / "fresh").write_bytes(b"fresh\n")
    image = tmp_path / "t.dump"
    pydump("--level", "12", "-T", "@1800000000", "-f", str(image), str(tree))  # a date after everything
    names = listing(restore("-t", "-f", str(image), cwd=tmp_path, tmp=tmp_path).stdout)
    assert set(names) == {"."}
    pydump("-5", "-T", base, "-f", str(image), str(tree))
    names = listing(restore("-t", "-f", str(image), cwd=tmp_path, tmp=tmp_path).stdout)
    assert "./fresh" in names and "./sparse" not in names


@pytest.mark.parametrize("flags", [["-T", "@99999999999999999999"], ["-T", "@2147483648"], ["-T", "9999-12-31"],
                                   ["-T", "0001-01-01"], ["--snapshot-date", "Fri Dec 31 23:59:59 9999"]])
def test_a_date_a_header_cannot_hold_is_refused_in_one_line(tmp_path: Path, tree: Path, flags: list[str]) -> None:
    """A dump's dates are signed 32-bit seconds: from 1970 to January 2038 (it was an OverflowError)."""
    done = pydump("-0", "-D", str(tmp_path / "dd"), *flags, "-f", str(tmp_path / "img"), str(tree), check=False)
    assert done.returncode == 1
    assert done.stderr.decode() == (f"pydump: {flags[0]} {flags[1]!r}: out of range (a dump's dates run from "
                                    "1970 to 2038-01-19 03:14:07 UTC)\n")
    assert not (tmp_path / "img").exists() and not (tmp_path / "dd").exists()


def test_an_exclude_file_of_more_than_64_mib_is_refused(tmp_path: Path, tree: Path) -> None:
    """-E reads at most 64 MiB (/dev/urandom was read for ever); a byte not UTF-8 is a bad word, no traceback."""
    endless = tmp_path / "endless"
    with endless.open("wb") as f:
        f.truncate(64 * 1024 * 1024 + 1)
    done = pydump("-0", "-E", str(endless), "-f", str(tmp_path / "img"), str(tree), check=False)
    assert (done.returncode, done.stderr.decode()) == (1, f"pydump: -E {endless}: more than 64 MiB: not a list of "
                                                          "inode numbers\n")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\n")
    done = pydump("-0", "-E", str(binary), "-f", str(tmp_path / "img"), str(tree), check=False)
    assert done.returncode == 1 and done.stderr.decode(errors="replace").count("\n") == 1
    assert b"is not an inode number" in done.stderr


# -- blocking factors ------------------------------------------------------------------------


@pytest.mark.parametrize("ntrec", [4, 10, 32, 64, 256])
def test_blocking_factor_round_trips(tmp_path: Path, ntrec: int) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(os.urandom(300 * 1024 + 17))
    (src / "small").write_bytes(b"small\n")
    image = tmp_path / "b.dump"
    pydump("-0", "--quiet", "-b", str(ntrec), "-f", str(image), str(src))
    assert image.stat().st_size % (ntrec * TP_BSIZE) == 0
    out = tmp_path / "out"
    out.mkdir()
    restore("-r", "-y", "-f", str(image), cwd=out, tmp=tmp_path)
    assert_same_tree(src, out)


@pytest.mark.parametrize("ntrec", [3, 257])
def test_blocking_factor_outside_4_to_256_is_refused(tmp_path: Path, tree: Path, ntrec: int) -> None:
    result = pydump("-0", "-b", str(ntrec), "-f", str(tmp_path / "x.dump"), str(tree), check=False)
    assert result.returncode == 1
    assert result.stderr.decode().strip() == f"pydump: blocking factor {ntrec} is out of range 4 to 256 " \
                                              "(-b takes KiB per record)"
    assert not (tmp_path / "x.dump").exists()


# -- bad input -------------------------------------------------------------------------------


def test_missing_source_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = pydump("-0", "-f", str(tmp_path / "x.dump"), str(tmp_path / "nowhere"), check=False)
    assert result.returncode == 1
    err = result.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0] and "no such directory" in err[0]


def test_an_entry_past_path_max_is_named_not_left_out_in_silence(tmp_path: Path) -> None:
    # 30 folders of 200-character names: the deeper ones lie past PATH_MAX (4,096 bytes), where a
    # path's stat fails with ENAMETOOLONG; it was taken for "gone since the listing" and the
    # subtree left out of the image without a word (exit 0, "DUMP IS DONE")
    top = tmp_path / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(30):
        os.mkdir("D" * 200, dir_fd=fd)
        deeper = os.open("D" * 200, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    os.close(fd)
    result = pydump("-0", "--quiet", "-f", str(tmp_path / "x.dump"), str(top), check=False)
    err = result.stderr.decode()
    assert "Traceback" not in err
    assert re.search(r"cannot dump .*/D{200}: File name too long; left out", err), err


def test_unwritable_output_is_one_line_and_exit_1(tmp_path: Path, tree: Path) -> None:
    result = pydump("-0", "--quiet", "-f", str(tmp_path / "no-dir" / "x.dump"), str(tree), check=False)
    assert result.returncode == 1
    err = result.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "cannot open output" in err[0], err
    assert "Traceback" not in result.stderr.decode()


def test_bad_flags_are_one_line(tmp_path: Path, tree: Path) -> None:
    for args in (["--level", "32"], ["-Z"], ["-T", "yesterday-ish"]):
        result = pydump(*args, "-f", str(tmp_path / "x.dump"), str(tree), check=False)
        assert result.returncode == 1, args
        assert len(result.stderr.decode().strip().splitlines()) == 1, result.stderr


# -- table of contents, exclusions ---------------------------------------------------------------


def test_toc_matches_restore_listing_and_exclusions_drop_inodes(tmp_path: Path, tree: Path) -> None:
    image, toc = tmp_path / "a.dump", tmp_path / "toc"
    pydump("-0", "--quiet", "-A", str(toc), "-f", str(image), str(tree))
    listed = restore("-t", "-f", str(image), cwd=tmp_path, tmp=tmp_path).stdout
    # dump's archive file: the real restore lists it without the image (restore -t -A)
    from_toc = restore("-t", "-A", str(toc), cwd=tmp_path, tmp=tmp_path).stdout
    assert listing(from_toc) == listing(listed)
    names = listing(listed)
    excl = tmp_path / "excl"
    excl.write_text(f"{names['./dir1']}\n")
    pydump("-0", "--quiet", "-e", str(names["./sparse"]), "-E", str(excl), "-f", str(image), str(tree))
    after = listing(restore("-t", "-f", str(image), cwd=tmp_path, tmp=tmp_path).stdout)
    assert "./sparse" not in after and not any(n.startswith("./dir1") for n in after)
    assert after["./hello.txt"] == names["./hello.txt"]


# -- multi-volume files ---------------------------------------------------------------------------


def test_multivolume_files_restore_with_dash_M(tmp_path: Path, tree: Path) -> None:
    prefix = tmp_path / "vol"
    pydump("-0", "--quiet", "-M", "-B", "300", "-f", str(prefix), str(tree))
    volumes = sorted(tmp_path.glob("vol*"))
    assert [v.name for v in volumes[:2]] == ["vol001", "vol002"] and len(volumes) >= 3
    assert all(v.stat().st_size <= 300 * TP_BSIZE for v in volumes)
    listed = restore("-t", "-M", "-f", str(prefix), cwd=tmp_path, tmp=tmp_path).stdout
    assert "./dir1/big.bin" in listing(listed)
    out = tmp_path / "out"
    out.mkdir()
    restore("-r", "-y", "-M", "-f", str(prefix), cwd=out, tmp=tmp_path)
    assert_same_tree(tree, out)


# -- tapes: the shelf --------------------------------------------------------------------------


def test_dump_to_a_shelf_drive_restores_from_a_copy(tmp_path: Path, tree: Path, nst0: str) -> None:
    pydump("-0", "--quiet", "-b", "64", "-f", nst0, str(tree))
    copy = tmp_path / "copy.dump"
    copy.write_bytes(tape_copy(nst0))
    assert len(copy.read_bytes()) % (64 * TP_BSIZE) == 0
    out = tmp_path / "out"
    out.mkdir()
    restore("-r", "-y", "-f", str(copy), cwd=out, tmp=tmp_path)
    assert_same_tree(tree, out)


def test_full_cartridge_changes_to_the_next_in_the_shelf(tmp_path: Path, shelf: Shelf, nst0: str) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "big").write_bytes(os.urandom(6 * 1024 * 1024))
    (src / "after").write_bytes(b"after\n")
    shelf.new_cartridge("TEST02", capacity=8 * 1024 * 1024)
    result = pydump("-0", "-f", nst0, str(src))
    assert "TEST02" in result.stderr.decode()
    assert shelf.status().drives[0].barcode == "TEST02"
    assert_same_tree(src, restore_both_cartridges(shelf, nst0, tmp_path))


def test_full_cartridge_with_no_other_is_a_clear_error(tmp_path: Path, nst0: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(6 * 1024 * 1024))
    result = pydump("-0", "--quiet", "-f", nst0, str(src), check=False)
    assert result.returncode == 1
    err = result.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "no other cartridge" in err[0], err


def test_a_cartridges_own_file_is_refused_as_a_plain_output(tmp_path: Path, shelf: Shelf, nst0: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(200_000))
    pydump("-0", "--quiet", "-f", nst0, str(src))  # the backup we need
    shelf.set_write_protect("TEST01", True)
    cartridge = shelf.cartridge_path("TEST01")
    shelf.new_cartridge("IDLE")
    kept = {path: path.read_bytes() for path in (cartridge, cartridge.with_suffix(".json"), shelf.path / "state.json",
                                                  shelf.cartridge_path("IDLE"))}
    with open_device(nst0):  # the drive busy besides: another process holds it
        for path, drive in ((cartridge, f"{shelf.path}/nst0"),
                            (cartridge.with_suffix(".json"), f"{shelf.path}/nst0"),
                            (shelf.cartridge_path("IDLE"), f"{shelf.path}/nst0 once loaded (pytape load "),
                            (shelf.path / "state.json", f"{shelf.path}/nst0")):
            done = pydump("-0", "--quiet", "-f", str(path), str(src), check=False)
            err = done.stderr.decode().strip().splitlines()
            assert done.returncode == 1 and len(err) == 1, err
            assert f"cannot open output {path}: " in err[0] and "own file, not a plain file" in err[0], err
            assert drive in err[0], err
    assert {path: path.read_bytes() for path in kept} == kept
    # relative and through a link, the name is the same file
    link = tmp_path / "link"
    link.symlink_to(shelf.path / "cartridges")
    done = pydump("-0", "--quiet", "-f", "link/TEST01.awstape", str(src), check=False, cwd=tmp_path)
    assert done.returncode == 1 and "cartridge TEST01's own file" in done.stderr.decode()
    assert cartridge.read_bytes() == kept[cartridge]


def test_real_restore_reads_the_shelf_drive_through_pyrmt(tmp_path: Path, tree: Path, nst0: str) -> None:
    rsh = fake_rsh(tmp_path, console_script("pyrmt"))
    pydump("-0", "--quiet", "-f", nst0, str(tree))
    with open_device(nst0) as tape:
        tape.rewind()
    scratch = tmp_path / "rtmp"
    scratch.mkdir()
    listed = subprocess.run([RESTORE, "-t", "-f", f"localhost:{nst0}"], capture_output=True, text=True,
                            env=dict(env(), RSH=str(rsh), RMT=console_script("pyrmt"), TMPDIR=str(scratch)),
                            stdin=subprocess.DEVNULL, timeout=120, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "./dir1/big.bin" in listing(listed.stdout)


def test_pydump_writes_to_a_remote_drive_through_pyrmt(tmp_path: Path, tree: Path, nst0: str) -> None:
    rsh = fake_rsh(tmp_path, console_script("pyrmt"))
    result = subprocess.run([console_script("pydump"), "-0", "--quiet", "-f", f"localhost:{nst0}", str(tree)],
                            env=dict(env(), RSH=str(rsh), RMT=console_script("pyrmt")), capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stderr
    copy = tmp_path / "copy.dump"
    copy.write_bytes(tape_copy(nst0))
    assert "./dir1/big.bin" in listing(restore("-t", "-f", str(copy), cwd=tmp_path, tmp=tmp_path).stdout)


# -- the engine's API -------------------------------------------------------------------------------


def test_engine_runs_the_stages_in_order_and_reports_progress(tmp_path: Path, tree: Path) -> None:
    from dumptool.dump import Dump, DumpOptions, Stage

    lines: list[str] = []
    dump = Dump(DumpOptions(source=str(tree), output=str(tmp_path / "e.dump"), progress_interval=1e-9),
                say=lines.append)
    stages = [cursor.stage for cursor in dump.steps()]
    assert stages[0] == Stage.MAP and stages[-2:] == [Stage.END, Stage.DONE]
    middle = stages[1:-2]
    assert middle == sorted(middle, key=[Stage.DIRECTORIES, Stage.FILES].index)
    assert middle.count(Stage.DIRECTORIES) == sum(1 for p in tree.rglob("*") if p.is_dir() and not p.is_symlink()) + 1
    estimate = next(i for i, line in enumerate(lines) if line.startswith("estimated "))
    progress = [i for i, line in enumerate(lines) if re.fullmatch(r"\d+\.\d\d% done( at \d+ kB/s)?, finished in \d+:\d\d", line)]
    assert progress and progress[0] > estimate
    assert lines[-1] == "DUMP IS DONE"


def test_a_sigterm_ends_a_live_dump_as_an_interrupt_does(tmp_path: Path) -> None:
    # (a dump of a snapfs volume took SIGTERM so already; a live one was killed without a word)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(4 << 20))
    dates = tmp_path / "dumpdates"
    dump = subprocess.Popen([console_script("pydump"), "-0", "-u", "-D", str(dates), "-f", "-", str(src)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env())
    try:
        assert dump.stdout is not None and dump.stdout.read(1024)  # writing: the pipe is full behind it
        time.sleep(0.5)
        dump.send_signal(signal.SIGTERM)
        _, err = dump.communicate(timeout=60)
    finally:
        dump.kill()
    assert dump.returncode == 3, err
    assert err.decode().splitlines()[-1] == "  DUMP: interrupted: the ENTIRE dump is aborted"
    assert not dates.exists() or dates.read_text() == ""
