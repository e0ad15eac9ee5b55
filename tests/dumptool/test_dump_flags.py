"""pydump as dump 0.4b47's users know it, checked against the real dump and restore.

The header lines and their order, the size estimate (``-S``), the archive
file (``-A``, read by the real ``restore -t -A`` and ``restore -i -A``), the
old keyless syntax, ``-q`` (abort instead of asking), ``-W``/``-w``, ``-F``,
and ``-B`` to a plain file at a terminal (it asks for the next volume file).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import console_script
from dumptool.format import ByteOrder, Header
from samples import DUMP, RESTORE, ext4_volume, listing, real_restore
from test_pydump import env, pydump
from test_volume_prompt import READY, converse, pydump_on_a_pty

_CTIME = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}")


def small_tree(root: Path) -> Path:
    """Files of several sizes (one past the direct blocks), directories, a symlink, a hard link."""
    (root / "d1" / "sub").mkdir(parents=True)
    (root / "d2").mkdir()
    for n in range(30):
        (root / "d1" / f"f{n}").write_bytes(os.urandom(n * 700))
    (root / "d1" / "sub" / "big").write_bytes(os.urandom(300 * 1024))
    (root / "d2" / "text").write_text("hello\n" * 1000)
    os.link(root / "d2" / "text", root / "d2" / "link")
    os.symlink("d2/text", root / "sym")
    os.symlink("x" * 200, root / "longsym")
    return root


def masked(stderr: str, *, timed: bool = False) -> list[str]:
    """dump's operator lines with dates, numbers, names and timings masked, in
    order (*timed*: with the lines a volume that took a second or more adds)."""
    lines = []
    for line in stderr.splitlines():
        if not line.startswith("  DUMP: "):
            continue
        line = line[len("  DUMP: "):]
        if line.startswith("Excluding inode"):  # ext2's own inodes (journal, resize): no such thing in a tree
            continue
        if line.startswith("dumping a live file system: "):  # pydump's own, once: no snapshot is read
            continue
        if re.match(r"Volume \d+ (took|transfer rate)", line) and not timed:
            continue  # printed only when a volume took a second or more, by both
        line = _CTIME.sub("DATE", line)
        line = re.sub(r"^Dumping .* to .*", "Dumping SOURCE to OUTPUT", line)
        line = re.sub(r"^Dumping volume (\d+) on .*", r"Dumping volume \1 on FILE", line)
        line = re.sub(r"^Closing .*", "Closing OUTPUT", line)
        line = re.sub(r"^Archiving dump to .*", "Archiving dump to FILE", line)  # dump 0.4b47 says "(null)"
        line = re.sub(r"^finished in .*", "finished in TIME", line)
        line = re.sub(r"\d+(\.\d+)?", "N", line)
        lines.append(line)
    return lines


def test_header_lines_size_estimate_and_archive_file_match_the_real_dump(tmp_path: Path) -> None:
    src = small_tree(tmp_path / "src")
    with ext4_volume(src, tmp_path / "fs.img", "8M") as loop:
        mnt = loop.mount(tmp_path / "mnt")
        ours = pydump("-0", "-A", str(tmp_path / "ours.toc"), "-f", str(tmp_path / "ours"), str(mnt))
        our_size = int(pydump("-0", "-S", str(mnt)).stdout)
        ours_m = pydump("-0", "-M", "-B", "300", "-f", str(tmp_path / "ours-v"), str(mnt))
        loop.umount()
        dates = tmp_path / "dumpdates"  # the real dump's own (it warns when its file is missing)
        dates.touch()
        real = subprocess.run([DUMP, "-0", "-D", str(dates), "-A", str(tmp_path / "real.toc"), "-f",
                               str(tmp_path / "real"), loop.dev],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert real.returncode == 0, real.stderr
        real_m = subprocess.run([DUMP, "-0", "-D", str(dates), "-M", "-B", "300", "-f", str(tmp_path / "real-v"),
                                 loop.dev],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert real_m.returncode == 0, real_m.stderr
        real_size = int(subprocess.run([DUMP, "-0", "-D", str(dates), "-S", loop.dev], capture_output=True, text=True,
                                       check=True).stdout)
    # the same lines in the same order (the real dump's, times and numbers masked)
    assert masked(ours.stderr.decode()) == masked(real.stderr)
    volume_lines = masked(ours_m.stderr.decode())  # with volume changes: "Dumping volume 2 on ...", "begins with"
    assert volume_lines == masked(real_m.stderr) and volume_lines.count("Volume N begins with blocks from inode N") >= 2
    # -S: bytes on stdout, within 1% of the real dump's estimate of the same tree
    assert abs(our_size - real_size) <= real_size / 100, (our_size, real_size)
    # -A: the real restore reads our archive file as it reads dump's, without the image
    from_image = listing(real_restore("-t", "-f", str(tmp_path / "ours"), cwd=tmp_path, tmp=tmp_path).stdout)
    from_toc = listing(real_restore("-t", "-A", str(tmp_path / "ours.toc"), cwd=tmp_path, tmp=tmp_path).stdout)
    assert from_toc == from_image and "./d1/sub/big" in from_toc
    assert (tmp_path / "ours.toc").stat().st_size < (tmp_path / "ours").stat().st_size // 4  # no file data
    session = subprocess.run([RESTORE, "-i", "-A", str(tmp_path / "ours.toc")], input="cd d2\nls\nquit\n",
                             capture_output=True, text=True, cwd=tmp_path, timeout=60)
    said = session.stdout + session.stderr  # restore's ls writes to stderr when not on a terminal
    assert session.returncode == 0 and "./d2:\nlink text\n" in said, said


def test_a_dump_that_takes_seconds_says_what_the_real_dump_says(tmp_path: Path) -> None:
    """To a pipe read after a pause (the dump waits on it): "Volume 1 took
    H:MM:SS", "Volume 1 transfer rate", "finished in" and "Average transfer
    rate" as dump says them, the lines of a dump to standard output."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(3 << 20))
    slowly = "sleep 2.5; cat > /dev/null"  # pydump starts writing half a second or so after the shell
    with ext4_volume(src, tmp_path / "fs.img", "8M") as loop:
        mnt = loop.mount(tmp_path / "mnt")
        ours = subprocess.run(f"{console_script('pydump')} -0 -f - {mnt} | ({slowly})", shell=True, env=env(),
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        loop.umount()
        dates = tmp_path / "dumpdates"  # the real dump's own (it warns when its file is missing)
        dates.touch()
        real = subprocess.run(f"{DUMP} -0 -D {dates} -f - {loop.dev} | ({slowly})", shell=True,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert ours.returncode == real.returncode == 0, ours.stderr + real.stderr
    said = masked(ours.stderr, timed=True)
    assert said == masked(real.stderr, timed=True)
    assert "Volume N took N:N:N" in said and "Volume N transfer rate: N kB/s" in said
    took = int(re.search(r"Volume 1 took 0:00:(\d\d)", ours.stderr).group(1))
    assert took >= 1


def test_archive_file_of_a_compressed_dump_is_plain(tmp_path: Path) -> None:
    src = small_tree(tmp_path / "src")
    toc = tmp_path / "toc"
    pydump("-0", "--quiet", "-z", "-A", str(toc), "-f", str(tmp_path / "img"), str(src))
    first = Header.unpack(toc.read_bytes()[:1024], ByteOrder.LITTLE)
    assert not first.c_flags & 0x80  # DR_COMPRESSED off, as in dump's archive file
    names = listing(real_restore("-t", "-A", str(toc), cwd=tmp_path, tmp=tmp_path).stdout)
    assert {"./d1/f3", "./d2/link", "./sym"} <= set(names)


def test_keyless_syntax_and_verbose_lines(tmp_path: Path) -> None:
    src = small_tree(tmp_path / "src")
    done = pydump("0vbf", "64", str(tmp_path / "img"), str(src))
    err = done.stderr.decode()
    assert "Writing 64 Kilobyte records" in err and "dumping directory inode 2" in err
    assert re.search(r"dumping regular inode \d+", err)
    assert Header.unpack((tmp_path / "img").read_bytes()[:1024], ByteOrder.LITTLE).c_ntrec == 64
    progress = pydump("0uDf", str(tmp_path / "dd"), str(tmp_path / "img0"), str(src), "--progress", "0.000001")
    # dump's progress line, every --progress seconds here instead of dump's 5 minutes
    assert re.search(r"  DUMP: \d+\.\d\d% done( at \d+ kB/s)?, finished in \d+:\d\d\n", progress.stderr.decode())
    assert (tmp_path / "dd").read_text().startswith(f"{src} 0 ")
    names = listing(real_restore("-t", "-f", str(tmp_path / "img0"), cwd=tmp_path, tmp=tmp_path).stdout)
    assert "./d1/sub/big" in names


def test_W_and_w_print_what_the_real_dump_prints(tmp_path: Path) -> None:
    src = small_tree(tmp_path / "src")
    dates = tmp_path / "dumpdates"
    pydump("-0", "--quiet", "-u", "-D", str(dates), "-f", str(tmp_path / "img"), str(src))
    said = {}
    for flag in ("-W", "-w"):
        ours = pydump("-D", str(dates), flag).stdout.decode().splitlines()
        real = subprocess.run([DUMP, "-D", str(dates), flag], capture_output=True, text=True).stdout.splitlines()
        assert ours[0] == real[0]
        assert set(ours[1:]) <= set(real[1:]), (ours, real)  # the real one adds /etc/fstab's file systems
        said[flag] = ours
    assert [line for line in said["-W"] if str(src) in line and "Last dump: Level 0, Date " in line], said


def test_q_aborts_instead_of_asking_and_prints_the_usual_lines(tmp_path: Path) -> None:
    src = small_tree(tmp_path / "src")
    result = pydump("-0", "-q", "-B", "100", "-f", str(tmp_path / "vol"), str(src), check=False)
    err = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in err
    assert "DUMP: Date of this level 0 dump" in err and "estimated " in err  # -q is not quiet
    assert "volume 1 is full (-B 100)" in err.splitlines()[-1] and "-q or --no-prompt forbids" in err
    assert (tmp_path / "vol").stat().st_size > 0  # volume 1 stays as written


def test_B_to_a_plain_file_asks_for_the_next_volume_file(tmp_path: Path) -> None:
    src = small_tree(tmp_path / "src")
    first = tmp_path / "vol001"
    pid, fd = pydump_on_a_pty("-0", "-n", "-B", "200", "-f", str(first), str(src))

    def operator(n: int) -> str:
        if n == 1:
            return "yes"  # vol001 still holds volume 1: refused, asked again
        return str(tmp_path / f"vol{n:03d}")

    seen, code = converse(fd, pid, {READY: operator})
    os.close(fd)
    assert code == 0, seen
    assert "Change Volumes: Mount volume #2" in seen and "holds volume 1 of this dump" in seen
    assert "Message to the operators: CHANGE DUMP VOLUMES!" in seen  # -n
    volumes = sorted(tmp_path.glob("vol0*"))
    assert len(volumes) >= 3 and first.stat().st_size > 0
    # the volumes read back as dump's -M files with the real restore
    names = listing(real_restore("-t", "-M", "-f", str(tmp_path / "vol"), cwd=tmp_path, tmp=tmp_path).stdout)
    assert "./d1/sub/big" in names and "./d2/link" in names


def test_eot_script_moves_full_volumes_away(tmp_path: Path) -> None:
    src = small_tree(tmp_path / "src")
    script = tmp_path / "eot"
    script.write_text('#!/bin/sh\nmv "$1" "$1.$2"\n')
    script.chmod(0o755)
    out = tmp_path / "img"
    done = subprocess.run([console_script("pydump"), "-0", "-q", "-B", "200", "-F", str(script), "-f", str(out),
                           str(src)], env=env(), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          start_new_session=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"Launching {script}" in done.stderr
    for n, part in enumerate([out.with_name("img.1"), out.with_name("img.2")], 1):
        assert Header.unpack(part.read_bytes()[:1024], ByteOrder.LITTLE).c_volume == n
    failing = tmp_path / "fail"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    bad = pydump("-0", "-q", "-B", "200", "-F", str(failing), "-f", str(tmp_path / "x"), str(src), check=False)
    assert bad.returncode == 1 and "Dump aborted by the end of tape script" in bad.stderr.decode().splitlines()[-1]


@pytest.mark.parametrize("args, message", [
    (["-a", "-B", "100"], "You cannot use the a and B flags together."),
    (["-T", "@1", "-u"], "You cannot use the T and u flags together."),
    (["-c"], "-c: not supported"),
    (["-s", "-d"], "not supported"),
    (["-I", "-1"], "-I -1"),
    (["-y"], "-y (lzo) is not supported"),
])
def test_dump_flags_refused_say_why(tmp_path: Path, args: list[str], message: str) -> None:
    result = pydump("-0", *args, "-f", str(tmp_path / "x"), str(tmp_path), check=False)
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1 and len(err) == 1 and message in err[0], err


def test_I_stops_the_dump_past_N_files_that_cannot_be_read(tmp_path: Path) -> None:
    from dumptool.dump import Dump, DumpOptions, Stage
    from dumptool.errors import DumpError

    src = tmp_path / "src"
    src.mkdir()
    for n in range(4):
        (src / f"f{n}").write_text("x")

    def dump_after_the_files_vanish(limit: int) -> list[str]:
        for n in range(4):
            (src / f"f{n}").write_text("x")
        warnings: list[str] = []
        dump = Dump(DumpOptions(source=str(src), output=str(tmp_path / f"img{limit}"), read_errors=limit,
                                dumpdates=str(tmp_path / "dd")), warn=warnings.append)
        steps = dump.steps()
        assert next(steps).stage is Stage.MAP
        for n in range(4):
            (src / f"f{n}").unlink()  # gone between the walk and the read: "cannot read"
        for _ in steps:
            pass
        return warnings

    with pytest.raises(DumpError, match=r"more than 2 files could not be read .* \(-I 2\)"):
        dump_after_the_files_vanish(2)
    assert len(dump_after_the_files_vanish(0)) == 4  # -I 0: no limit, each one a warning


def test_a_n_and_dumps_progress_interval(tmp_path: Path) -> None:
    """-a (dump to the end of the medium: the default on a file) is taken
    alone; -n tells the operators "DUMP IS DONE!" among the DUMP lines;
    the progress line waits dump's 5 minutes unless --progress says less."""
    src = small_tree(tmp_path / "src")
    told = pydump("-0", "-a", "-n", "-f", str(tmp_path / "img"), str(src)).stderr.decode().splitlines()
    assert told[-2:] == ["  DUMP: Message to the operators: DUMP IS DONE!", "  DUMP: DUMP IS DONE"]
    assert not [line for line in told if "% done" in line]  # a dump of a second: no progress line
    names = listing(real_restore("-t", "-f", str(tmp_path / "img"), cwd=tmp_path, tmp=tmp_path).stdout)
    assert "./d1/sub/big" in names
    plain = pydump("-0", "-f", str(tmp_path / "img2"), str(src)).stderr.decode()
    assert "Message to the operators" not in plain and plain.endswith("  DUMP: DUMP IS DONE\n")
