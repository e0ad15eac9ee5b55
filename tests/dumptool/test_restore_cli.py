"""pyrestore as restore 0.4b47's users know it, judged side by side with the
real restore on the same image: ``-C`` output and exit codes, ``-t NAME`` of
a name not on the image."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import console_script
from samples import real_restore


def pyrestore(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([console_script("pyrestore"), *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def both(tmp: Path, *args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """(the real restore's run, ours) of the same arguments."""
    return real_restore(*args, cwd=cwd, tmp=tmp, check=False), pyrestore(*args, cwd=cwd)


def lines(err: str) -> list[str]:
    """stderr's lines, the program's name taken off."""
    return [line.removeprefix("/sbin/restore: ").removeprefix("pyrestore: ") for line in err.splitlines()]


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    src = tmp / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "e").mkdir()
    for name, data in {"a.txt": b"hello\n", "grow": b"grow\n", "shrink": b"shrink me\n", "mode": b"m\n",
                       "owner": b"o\n", "gone": b"gone\n", "attr": b"x\n", "d/b.py": b"print()\n",
                       "d/sub/deep": b"deep\n", "big": bytes(range(256)) * 64}.items():
        (src / name).write_bytes(data)
    os.setxattr(src / "attr", "user.k", b"v1")
    os.symlink("a.txt", src / "link")
    subprocess.run([console_script("pydump"), "-0", "-f", str(tmp / "img"), str(src)], check=True,
                   capture_output=True)
    return src, tmp / "img"


def test_compare_of_the_same_tree_says_what_restore_says(image, tmp_path):
    src, img = image
    real, ours = both(tmp_path, "-C", "-f", str(img), cwd=tmp_path)
    assert real.returncode == ours.returncode == 0, real.stderr + ours.stderr
    assert ours.stdout == real.stdout and "filesys = " + str(src) in ours.stdout
    assert ours.stderr == real.stderr == ""


def test_compare_of_a_changed_tree_has_restores_lines_summary_and_exit_2(image, tmp_path):
    src, img = image
    tree = tmp_path / "tree"
    subprocess.run(["cp", "-a", str(src), str(tree)], check=True)
    (tree / "a.txt").write_bytes(b"HELLO\n")       # same size, other bytes
    (tree / "grow").write_bytes(b"grow\nmore\n")   # longer
    (tree / "shrink").write_bytes(b"shr")          # shorter
    (tree / "big").write_bytes(bytes(range(256)) * 63 + b"x" * 256)  # differs in its last block
    os.chmod(tree / "mode", 0o600)
    os.chown(tree / "owner", 5, 6)
    (tree / "gone").unlink()
    os.setxattr(tree / "attr", "user.k", b"v2")
    os.unlink(tree / "link")
    os.symlink("elsewhere", tree / "link")
    os.chmod(tree / "d", 0o700)
    (tree / "e").rmdir()
    # relative: restore 0.4b47 keeps -D in 64 bytes and cuts a longer path
    real, ours = both(tmp_path, "-C", "-D", "tree", "-f", str(img), cwd=tmp_path)
    assert real.returncode == ours.returncode == 2, real.stderr + ours.stderr
    assert ours.stdout == real.stdout
    assert "Some files were modified!  12 compare errors" in ours.stdout
    assert lines(ours.stderr) == lines(real.stderr)


def test_compare_verbose_lines_are_restores(image, tmp_path):
    src, img = image
    real, ours = both(tmp_path, "-C", "-v", "-f", str(img), cwd=tmp_path)
    assert real.returncode == ours.returncode == 0
    wanted = [line for line in real.stdout.splitlines() if line.startswith("comparing")]
    assert [line for line in ours.stdout.splitlines() if line.startswith("comparing")] == wanted
    assert len(wanted) > 10


def test_listing_a_name_not_on_the_image_says_so_and_exits_0(image, tmp_path):
    _, img = image
    real, ours = both(tmp_path, "-t", "-f", str(img), "nothere", "./d/zz", "d", cwd=tmp_path)
    assert real.returncode == ours.returncode == 0
    assert ours.stderr == real.stderr == \
        "./nothere is not on the tape\n./d/zz is not on the tape\n"
    assert ours.stdout == real.stdout


def dumped_with_specials(src: Path) -> Path:
    """``src`` with a fifo and a character device added, dumped at level 0
    to ``img`` beside it (returned)."""
    os.mkfifo(src / "fifo")
    os.mknod(src / "null", 0o600 | 0o020000, os.makedev(1, 3))
    image = src.parent / "img"
    subprocess.run([console_script("pydump"), "-0", "-f", str(image), str(src)], check=True, capture_output=True)
    return image


@pytest.fixture(scope="module")
def linked_image(tmp_path_factory) -> Path:
    """A tree with every kind -v names: files, a hard link, a symlink, a fifo, a device."""
    tmp = tmp_path_factory.mktemp("linked")
    src = tmp / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "f").write_text("f\n")
    (src / "d" / "sub" / "g").write_text("g\n")
    os.link(src / "f", src / "d" / "hard")
    os.symlink("f", src / "lnk")
    return dumped_with_specials(src)


def verbose_lines(out: str) -> list[str]:
    """-v's lines, restore's question about '.' taken off."""
    return [line.removeprefix("set owner/mode for '.'? [yn] ") for line in out.splitlines()]


@pytest.mark.parametrize("mode", ["-r", "-x"])
def test_verbose_lines_are_restores_in_its_order(linked_image, tmp_path, mode):
    real_dir, ours_dir = tmp_path / "real", tmp_path / "ours"
    real_dir.mkdir()
    ours_dir.mkdir()
    real = subprocess.run(["/sbin/restore", mode, "-v", "-a", "-f", str(linked_image)], cwd=real_dir, input="n\n",
                          text=True, capture_output=True, timeout=60, env=dict(os.environ, TMPDIR=str(tmp_path)))
    ours = pyrestore(mode, "-v", "-f", str(linked_image), cwd=ours_dir)
    assert real.returncode == ours.returncode == 0, real.stderr + ours.stderr
    wanted = verbose_lines(real.stdout)
    assert verbose_lines(ours.stdout) == wanted
    for line in ("Verify tape and initialize maps", "Input is from a local file/pipe", "Input block size is 32",
                 "extract file ./d/hard", "Create hard link ./f->./d/hard", "Create symbolic link ./lnk->f",
                 "extract fifo ./fifo", "extract special file ./null", "Set directory mode, owner, and times."):
        assert line in wanted
    assert tree_of(ours_dir) == tree_of(real_dir)


@pytest.mark.parametrize("flags", [[], ["-b", "64"], ["-V"]], ids=["plain", "b64", "V"])
def test_verbose_lines_of_t_C_and_i_are_restores(linked_image, tmp_path, flags):
    """-v's lines before the listing, around the compare and before -i's
    prompt: the medium ("Input is from a local file/pipe", "Input block size
    is N" as -b and -V make them), the header, restore's phases."""
    for mode in ("-t", "-C"):
        real, ours = both(tmp_path, mode, "-v", *flags, "-D", str(linked_image.parent / "src"),
                          "-f", str(linked_image), cwd=tmp_path) if mode == "-C" else \
            both(tmp_path, mode, "-v", *flags, "-f", str(linked_image), cwd=tmp_path)
        assert real.returncode == ours.returncode == 0, real.stderr + ours.stderr
        said = ours.stdout
        if mode == "-C":  # pyrestore compares each name of a hard-linked file, restore one (see the README)
            assert "comparing ./d/hard (size: 2, mode: 0100644)\ncomparing ./f (size: 2" in said
            said = re.sub(r"comparing \./f \(.*\n", "", said)
        assert said == real.stdout
        assert "\nInput is from a local " in said and "Input block size is " in said
    real = subprocess.run(["/sbin/restore", "-i", "-v", *flags, "-f", str(linked_image)], input="quit\n", text=True,
                          capture_output=True, timeout=60, cwd=tmp_path, env=dict(os.environ, TMPDIR=str(tmp_path)))
    ours = subprocess.run([console_script("pyrestore"), "-i", "-v", *flags, "-f", str(linked_image)],
                          input="quit\n", text=True, capture_output=True, timeout=60, cwd=tmp_path)
    assert ours.returncode == real.returncode == 0
    assert ours.stdout.replace("pyrestore > ", "/sbin/restore > ") == real.stdout  # the prompt is argv[0]
    assert real.stdout.startswith("Verify tape and initialize maps\nInput is from a local ")


def test_verbose_lines_of_a_remote_tape_are_restores(linked_image, tmp_path, nst0):
    """On a shelf drive through pyrmt, for both: "Input is from a remote
    tape", "Tape block size is N" (the tape's record size)."""
    from samples import fake_rsh

    subprocess.run([console_script("pydump"), "-0", "-b", "16", "-f", nst0, str(linked_image.parent / "src")],
                   check=True, capture_output=True)
    rsh = fake_rsh(tmp_path, console_script("pyrmt"))
    said = {}
    for tool, program in (("real", "/sbin/restore"), ("ours", console_script("pyrestore"))):
        subprocess.run([console_script("pymt"), "-f", nst0, "rewind"], check=True)
        done = subprocess.run([program, "-t", "-v", "-f", f"localhost:{nst0}"], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, RSH=str(rsh), RMT=console_script("pyrmt"), TMPDIR=str(tmp_path)))
        assert done.returncode == 0, (tool, done.stderr)
        said[tool] = done.stdout
    assert said["ours"] == said["real"]
    assert said["ours"].startswith("Verify tape and initialize maps\nInput is from a remote tape\n"
                                   "Tape block size is 16\n")


def test_l_reads_a_remote_file_as_restore_does(image, tmp_path):
    """restore's -l: ``host:name`` is a file on that host, not a drive.  A
    dump file, plain and compressed (-z), read through pyrmt: with -l both
    say "Input is from a remote file/pipe" and the blocks they read at a
    time, and list the same; without -l a compressed file is read as tape
    records and breaks, for both; -i reads the remote file again at a second
    extract."""
    from samples import fake_rsh

    src, _ = image
    rsh = fake_rsh(tmp_path, console_script("pyrmt"))
    environ = dict(os.environ, RSH=str(rsh), RMT=console_script("pyrmt"), TMPDIR=str(tmp_path))
    for flags in ([], ["-z"]):
        img = tmp_path / f"img{''.join(flags)}"
        subprocess.run([console_script("pydump"), "-0", *flags, "-f", str(img), str(src)], check=True,
                       capture_output=True)
        said = {}
        for tool, program in (("real", "/sbin/restore"), ("ours", console_script("pyrestore"))):
            for l_flag in ([], ["-l"]):
                done = subprocess.run([program, "-t", "-v", *l_flag, "-f", f"localhost:{img}"], capture_output=True,
                                      text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL, env=environ)
                said[tool, bool(l_flag)] = done
        for tool in ("real", "ours"):
            assert said[tool, True].returncode == 0, (tool, said[tool, True].stderr)
            assert "Input is from a remote file/pipe\nInput block size is " in said[tool, True].stdout
            assert "Input is from a remote tape\n" in said[tool, False].stdout or said[tool, False].returncode
        assert said["ours", True].stdout == said["real", True].stdout
        assert "./d/sub/deep" in said["ours", True].stdout
        if flags:  # compressed records read as tape records: damage for both
            assert said["real", False].stdout != said["real", True].stdout
            assert said["ours", False].returncode == 1 and "Traceback" not in said["ours", False].stderr
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([console_script("pyrestore"), "-i", "-l", "-f", f"localhost:{tmp_path / 'img-z'}"],
                          input="add a.txt\nextract\nadd d\nextract\nquit\n", capture_output=True, text=True,
                          timeout=60, cwd=out, env=environ)
    assert done.returncode == 0 and "extract:" not in done.stdout, done.stdout + done.stderr
    assert (out / "a.txt").read_bytes() == b"hello\n" and (out / "d" / "sub" / "deep").read_bytes() == b"deep\n"


def test_l_reads_remote_volume_files_one_after_the_other(tmp_path):
    """-l -M -f host:PREFIX: the volumes of a compressed dump, files on the
    remote host, each opened in turn by restore 0.4b47 and by pyrestore."""
    from samples import fake_rsh
    from test_pydump import assert_same_tree

    src = tmp_path / "src"
    src.mkdir()
    for n in range(3):
        (src / f"f{n}").write_bytes(os.urandom(150_000))
    subprocess.run([console_script("pydump"), "-0", "-q", "-z", "-M", "-B", "200", "-f", str(tmp_path / "vol"),
                    str(src)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    assert len(list(tmp_path.glob("vol0*"))) >= 2
    rsh = fake_rsh(tmp_path, console_script("pyrmt"))
    environ = dict(os.environ, RSH=str(rsh), RMT=console_script("pyrmt"), TMPDIR=str(tmp_path))
    for tool, program in (("real", "/sbin/restore"), ("ours", console_script("pyrestore"))):
        out = tmp_path / tool
        out.mkdir()
        done = subprocess.run([program, "-r", "-l", "-M", "-f", f"localhost:{tmp_path / 'vol'}"], cwd=out,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=environ)
        assert done.returncode == 0, (tool, done.stderr)
        (out / "restoresymtable").unlink()
        assert_same_tree(src, out)


def tree_of(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != "restoresymtable")


def test_keyless_syntax_is_restores(image, tmp_path):
    _, img = image
    real, ours = both(tmp_path, "tf", str(img), cwd=tmp_path)
    assert real.returncode == ours.returncode == 0 and ours.stdout == real.stdout != ""
    piped = subprocess.run([console_script("pyrestore"), "tf", "-"], stdin=open(img, "rb"), capture_output=True,
                           text=True, timeout=60)
    assert piped.returncode == 0 and piped.stdout == real.stdout
    for name, run in (("real", lambda d: real_restore("rf", str(img), cwd=d, tmp=tmp_path)),
                      ("ours", lambda d: pyrestore("rf", str(img), cwd=d))):
        (tmp_path / name).mkdir()
        assert run(tmp_path / name).returncode == 0
    assert tree_of(tmp_path / "ours") == tree_of(tmp_path / "real") and "d/sub/deep" in tree_of(tmp_path / "ours")
    missing = pyrestore("tf", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr == "pyrestore: option requires an argument -- f\n"


def test_names_from_a_file_with_X(image, tmp_path):
    _, img = image
    names = tmp_path / "names"
    names.write_text("d/sub\n\na.txt\n")
    real, ours = both(tmp_path, "-t", "-X", str(names), "-f", str(img), cwd=tmp_path)
    assert real.returncode == ours.returncode == 0
    assert ours.stdout == real.stdout  # name by name, in the file's order
    assert ours.stdout.index("./d/sub/deep") < ours.stdout.index("./a.txt") and "./d/b.py" not in ours.stdout
    (tmp_path / "x").mkdir()
    assert pyrestore("-x", "-X", str(names), "-f", str(img), cwd=tmp_path / "x").returncode == 0
    assert tree_of(tmp_path / "x") == ["a.txt", "d", "d/sub", "d/sub/deep"]
    unreadable = pyrestore("-t", "-X", str(tmp_path / "nosuch"), "-f", str(img), cwd=tmp_path)
    assert unreadable.returncode == 2
    assert unreadable.stderr == f"pyrestore: can't open file for reading -- {tmp_path / 'nosuch'}\n"
    endless = tmp_path / "endless"  # more than 64 MiB (sparse): as /dev/zero, which was read for ever
    with endless.open("wb") as f:
        f.truncate(64 * 1024 * 1024 + 1)
    too_long = pyrestore("-t", "-X", str(endless), "-f", str(img), cwd=tmp_path)
    assert (too_long.returncode, too_long.stderr) == (2, f"pyrestore: -X {endless}: more than 64 MiB: not a list "
                                                         "of names\n")


def test_h_extracts_a_directory_itself_not_its_contents(image, tmp_path):
    _, img = image
    for name, args in (("with-h", ("-h",)), ("without", ())):
        (tmp_path / name).mkdir()
        assert pyrestore("-x", *args, "-f", str(img), "d", cwd=tmp_path / name).returncode == 0
    assert tree_of(tmp_path / "with-h") == ["d"]
    assert tree_of(tmp_path / "without") == ["d", "d/b.py", "d/sub", "d/sub/deep"]
    for name, args in (("real-h", ("-h",)), ("real", ())):  # the real restore makes the same
        (tmp_path / name).mkdir()
        assert real_restore("-x", "-a", *args, "-f", str(img), "d", cwd=tmp_path / name, tmp=tmp_path).returncode == 0
    assert tree_of(tmp_path / "real-h") == tree_of(tmp_path / "with-h")
    assert tree_of(tmp_path / "real") == tree_of(tmp_path / "without")


def test_compare_stops_at_the_limit_L_as_restore(image, tmp_path):
    src, img = image
    tree = tmp_path / "tree"
    subprocess.run(["cp", "-a", str(src), str(tree)], check=True)
    os.chmod(tree / "mode", 0o600)
    os.chown(tree / "owner", 5, 6)
    (tree / "gone").unlink()
    for limit in ("2", "3"):
        real, ours = both(tmp_path, "-C", "-L", limit, "-D", "tree", "-f", str(img), cwd=tmp_path)  # 64 bytes
        assert real.returncode == ours.returncode == 2
        assert ours.stdout == real.stdout and ours.stdout.endswith("Compare errors limit reached, exiting...\n")
        assert lines(ours.stderr) == lines(real.stderr) and len(lines(ours.stderr)) == int(limit)


def test_archive_file_with_A(tmp_path, image):
    src, _ = image
    toc = tmp_path / "toc"
    subprocess.run([console_script("pydump"), "-0", "-A", str(toc), "-f", str(tmp_path / "img"), str(src)],
                   check=True, capture_output=True)
    real, ours = both(tmp_path, "-t", "-A", str(toc), cwd=tmp_path)
    assert real.returncode == ours.returncode == 0
    assert ours.stdout == real.stdout and "./d/sub/deep" in ours.stdout
    refused = pyrestore("-r", "-A", str(toc), "-f", str(tmp_path / "img"), cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr == "pyrestore: A option is not valid for r command\n"
    # -i -A: browse the archive file as restore does; extract reads the medium (-f)
    session = "cd d\nls\nadd sub\nextract\nquit\n"
    (tmp_path / "real").mkdir()
    (tmp_path / "ours").mkdir()
    real = subprocess.run(["/sbin/restore", "-i", "-A", str(toc)], cwd=tmp_path / "real", input="cd d\nls\nquit\n",
                          text=True, capture_output=True, timeout=60, env=dict(os.environ, TMPDIR=str(tmp_path)))
    ours = subprocess.run([console_script("pyrestore"), "-i", "-A", str(toc), "-f", str(tmp_path / "img")],
                          cwd=tmp_path / "ours", input=session, text=True, capture_output=True, timeout=60)
    assert ours.returncode == 0, ours.stderr
    assert ours.stderr == real.stderr == "./d:\nb.py  sub/\n\n"
    assert tree_of(tmp_path / "ours") == ["d", "d/sub", "d/sub/deep"]
    (tmp_path / "x").mkdir()  # -x -A: the medium brings everything
    assert pyrestore("-x", "-A", str(toc), "-f", str(tmp_path / "img"), "d/sub", cwd=tmp_path / "x").returncode == 0
    assert tree_of(tmp_path / "x") == ["d", "d/sub", "d/sub/deep"]
    # an archive file of another dump (another second) is not taken for this medium's
    time.sleep(1.01 - time.time() % 1)
    subprocess.run([console_script("pydump"), "-0", "-f", str(tmp_path / "other"), str(src)], check=True,
                   capture_output=True)
    other = subprocess.run([console_script("pyrestore"), "-i", "-A", str(toc), "-f", str(tmp_path / "other")],
                           cwd=tmp_path, input=session, text=True, capture_output=True, timeout=60)
    assert "extract: " in other.stdout and "holds another dump than the archive file" in other.stdout
    assert not (tmp_path / "d").exists()
    # nor one of the same second: a date alone took any dump made then (another tree's, here)
    twin = tmp_path / "twin"
    shutil.copytree(src, twin)
    frozen = int(time.time()) - 60
    for tree, archive, image in ((src, "toc-a", "img-a"), (twin, "toc-b", "img-b")):
        subprocess.run([console_script("pydump"), "-0", "--snapshot-date", f"@{frozen}", "-A", str(tmp_path / archive),
                        "-f", str(tmp_path / image), str(tree)], check=True, capture_output=True)
    twin_out = subprocess.run([console_script("pyrestore"), "-i", "-A", str(tmp_path / "toc-a"), "-f",
                               str(tmp_path / "img-b")], cwd=tmp_path, input=session, text=True, capture_output=True,
                              timeout=60)
    assert "holds another dump than the archive file (its file system is" in twin_out.stdout, twin_out.stdout
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("flags", [["-c"], ["-k"], ["-e"], ["-E", "s0"]])
def test_flags_not_supported_are_refused_in_one_line(image, tmp_path, flags):
    _, img = image
    done = pyrestore("-t", *flags, "-f", str(img), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "not supported" in done.stderr


def test_accepted_flags_and_version(image, tmp_path):
    _, img = image
    plain = pyrestore("-t", "-f", str(img), cwd=tmp_path)
    for flags in (["-a"], ["-d"], ["-l"], ["-V"], ["-H", "1000"]):
        done = pyrestore("-t", *flags, "-f", str(img), cwd=tmp_path)
        assert done.returncode == 0 and done.stdout == plain.stdout, flags
    from importlib import metadata
    version = pyrestore("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout == f"pyrestore {metadata.version('snapdump')}\n"


def test_nul_terminated_listing_0(image, tmp_path):
    _, img = image
    real, ours = both(tmp_path, "-t", "-0", "-f", str(img), cwd=tmp_path)
    assert real.returncode == ours.returncode == 0
    assert ours.stdout == real.stdout and "\t./d/b.py\0" in ours.stdout


# --- -i through a terminal ------------------------------------------------------------------

#: a session of globs in ls/add/delete/cd, ls's columns and marks, verbose, prompt, Debug
SESSION = ["ls", "add *.py", "add t*", "ls", "ls [ab]*", "cd d*", "pwd", "ls", "cd /", "verbose", "ls",
           "delete t*", "ls", "prompt", "ls", "Debug", "Debug", "ls nothere*", "add zz*", "cd q*", "delete zz*",
           "delete apple", "add dir", "delete dir/z.py", "ls dir", "cd dir", "ls ../a*", "ls /", "ls ..",
           "ls bdir", "cd /a.py", "verbose", "ls a.py", "ls dir/z.py", "ls lnk", "ls fifo", "ls null", "what",
           "exit", "p", "x"]


@pytest.fixture(scope="module")
def browse_image(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("browse")
    src = tmp / "gs"
    (src / "dir").mkdir(parents=True)
    (src / "bdir").mkdir()
    for name in ("a.py", "b.py", "t1", "t2", "tea", "apple", "banana", "cherry", "longer_name_file_number_one",
                 "x.c", "dir/z.py"):
        (src / name).write_text(name + "\n")
    os.symlink("a.py", src / "lnk")
    return dumped_with_specials(src)


def drive(argv: list[str], cwd: Path, commands: list[str]) -> str:
    """What a terminal shows of *argv* answering *commands*, each typed once
    the prompt is there; the program's name at the prompt made restore's."""
    import pty
    import select

    main_fd, tty = pty.openpty()
    proc = subprocess.Popen([os.path.basename(argv[0]), *argv[1:]], executable=argv[0], cwd=cwd, stdin=tty,
                            stdout=tty, stderr=tty, close_fds=True,
                            env=dict(os.environ, LC_ALL="C", TMPDIR=str(cwd), TERM="dumb"))
    os.close(tty)
    seen = b""

    def read_until_prompt(mark: int) -> None:
        """Read until a prompt shows after *mark* (the output when the last command was typed)."""
        nonlocal seen
        deadline = time.monotonic() + 20
        while not (len(seen) > mark and seen.endswith(b"> ") and b"\n" in seen[mark:] or mark == 0
                   and seen.endswith(b"> ")):
            assert time.monotonic() < deadline, seen[-300:]
            ready, _, _ = select.select([main_fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main_fd, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                seen += chunk
            elif proc.poll() is not None:
                return

    try:
        mark = 0
        for command in commands:
            read_until_prompt(mark)
            mark = len(seen)
            os.write(main_fd, command.encode() + b"\n")
            if command in ("x", "quit"):
                break
        proc.wait(timeout=20)
        while True:  # what is left
            ready, _, _ = select.select([main_fd], [], [], 0.2)
            if not ready:
                break
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main_fd)
    # restore reads through readline: its terminal control sequences are not text
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace")).replace("\r\n", "\n")
    text = text.replace("\r", "")
    return "\n".join(line.replace("pyrestore", "restore", 1) if line.startswith("pyrestore") else line
                     for line in text.split("\n"))


def test_interactive_session_on_a_terminal_is_restores(browse_image, tmp_path):
    real_cwd, ours_cwd = tmp_path / "real", tmp_path / "ours"
    real_cwd.mkdir()
    ours_cwd.mkdir()
    real = drive(["/sbin/restore", "-i", "-f", str(browse_image)], real_cwd, SESSION)
    ours = drive([console_script("pyrestore"), "-i", "-f", str(browse_image)], ours_cwd, SESSION)
    # restore makes a directory the moment it is added ("Make node" with verbose on); pyrestore at extract
    assert "\nMake node ./dir\n" in real
    assert ours == real.replace("\nMake node ./dir\n", "\n")
    # what the session shows: globs, marks and type marks, columns, verbose inode numbers
    assert "\n*a.py\napple\n*b.py\nbanana\n./bdir:\n" in ours
    assert "\n*a.py                          lnk@\n" in ours and "\n*b.py                          null#\n" in ours
    assert "\n 3 *a.py                         12  longer_name_file_number_one \n" in ours
    assert "./zz*: not on extraction list" in ours and "./a.py: not a directory" in ours
    assert "restore:" + str(browse_image.parent / "gs") + ":/dir > " in ours


def test_interactive_extract_takes_what_globs_added_and_deleted(browse_image, tmp_path):
    """add/delete with globs and under an added directory: the files restore
    extracts (it asks which volume and about '.': pyrestore does not)."""
    (tmp_path / "real").mkdir()
    (tmp_path / "ours").mkdir()
    session = "add *.py\nadd dir\ndelete dir/z.py\nadd [bc]*\ndelete c*\nextract\n"
    subprocess.run(["/sbin/restore", "-i", "-f", str(browse_image)], cwd=tmp_path / "real",
                   input=session + "1\nn\nquit\n", text=True, capture_output=True, timeout=60,
                   env=dict(os.environ, TMPDIR=str(tmp_path)))
    done = subprocess.run([console_script("pyrestore"), "-i", "-f", str(browse_image)], cwd=tmp_path / "ours",
                          input=session + "quit\n", text=True, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert tree_of(tmp_path / "ours") == tree_of(tmp_path / "real") == ["a.py", "b.py", "banana", "bdir", "dir"]
    # a command read from a pipe is echoed after the prompt, as restore does
    assert done.stdout.startswith("pyrestore > add *.py\npyrestore > add dir\n")


def test_nothing_to_read_says_tape_read_error_on_first_record(image, tmp_path, shelf, nst0):
    """An empty file or pipe, a blank cartridge, a tape at its end of data:
    restore's line and exit 1, never a volume prompt."""
    _, img = image
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    real, ours = both(tmp_path, "-t", "-f", str(empty), cwd=tmp_path)
    assert real.returncode == ours.returncode == 1
    assert lines(ours.stderr) == lines(real.stderr) == ["Tape read error on first record"]
    piped = subprocess.run([console_script("pyrestore"), "-t", "-f", "-"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60)
    assert piped.returncode == 1 and piped.stderr == "pyrestore: Tape read error on first record\n"
    blank = pyrestore("-t", "-f", nst0, cwd=tmp_path)  # nothing ever written
    assert blank.returncode == 1 and blank.stdout == ""
    assert blank.stderr.startswith("pyrestore: Tape read error on first record (") and "Mount" not in blank.stderr
    subprocess.run([console_script("pydump"), "-0", "-f", nst0, str(image[0])], check=True, capture_output=True)
    at_end = pyrestore("-t", "-f", nst0, cwd=tmp_path)  # the drive stays after what it wrote
    assert at_end.returncode == 1 and at_end.stdout == ""
    assert at_end.stderr == "pyrestore: Tape read error on first record\n"
