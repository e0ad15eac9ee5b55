"""pyrestore -R: resume a -r that stopped at a volume change.

The image is a pydump -M -B set of small volumes, with a file big enough to
run across every volume boundary (so the checkpoint catches a file half
written, mid-record).  The -r is killed while it asks for volume 2; -R with
volume 2 (then 3, ...) completes the tree.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import console_script
from test_pydump import DATE, assert_same_tree, env, pydump, pyrestore


@pytest.fixture
def volumes(tmp_path: Path) -> tuple[Path, list[Path]]:
    src = tmp_path / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "a-small").write_bytes(b"small\n")
    (src / "d" / "big").write_bytes(os.urandom(900 * 1024 + 123))  # across every boundary
    (src / "d" / "sub" / "z-last").write_bytes(b"last\n")
    os.symlink("d/big", src / "link")
    os.link(src / "a-small", src / "d" / "hardlink")
    os.setxattr(src / "d" / "big", "user.big", b"x")
    os.setxattr(src / "d", "user.dir", b"y")
    os.chmod(src / "d" / "sub", 0o750)
    os.chown(src / "d" / "sub" / "z-last", 1234, 4321)
    for n, p in enumerate(sorted(src.rglob("*"))):
        os.utime(p, (DATE + n, DATE + n), follow_symlinks=False)
    pydump("-0", "--quiet", "-M", "-B", "300", "-f", str(tmp_path / "vol"), str(src))
    found = sorted(tmp_path.glob("vol0*"))
    assert len(found) >= 3
    return src, found



def kill_at_the_volume_prompt(volume1: Path, out: Path, *flags: str) -> None:
    proc = subprocess.Popen([console_script("pyrestore"), "-r", *flags, "-f", str(volume1)], cwd=out, env=env(),
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 60
    while b"Mount volume 2" not in seen and time.monotonic() < deadline:
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
    assert b"Mount volume 2" in seen, seen
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdin.close()
    proc.stderr.close()


def test_a_killed_rebuild_resumes_with_the_volume_it_asked_for(tmp_path: Path, volumes) -> None:
    src, vols = volumes
    out = tmp_path / "out"
    out.mkdir()
    kill_at_the_volume_prompt(vols[0], out)
    assert (out / "restoresymtable").exists()
    big = out / "d" / "big"
    assert not big.exists() or big.stat().st_size < (src / "d" / "big").stat().st_size

    wrong = pyrestore("-R", "-f", str(vols[2]), cwd=out)
    assert wrong.returncode == 1
    assert "is volume 3; the restore stopped before volume 2" in wrong.stderr

    done = pyrestore("-R", "-f", str(vols[1]), cwd=out, stdin="".join(f"{v}\n" for v in vols[2:]))
    assert done.returncode == 0, done.stderr
    assert "resuming the restore" in done.stderr
    assert_same_tree(src, out)
    again = pyrestore("-R", "-f", str(vols[1]), cwd=out)
    assert again.returncode == 1 and "no interrupted restore to resume" in again.stderr


def test_a_rebuild_given_no_next_volume_resumes_and_each_stop_checkpoints(tmp_path: Path, volumes) -> None:
    src, vols = volumes
    out = tmp_path / "out"
    out.mkdir()
    stopped = pyrestore("-r", "-f", str(vols[0]), cwd=out, stdin="none\n")
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    big = out / "d" / "big"
    for n, vol in enumerate(vols[1:-1], 2):  # one volume per -R, each stopping again
        step = pyrestore("-R", "-f", str(vol), cwd=out, stdin="none\n")
        assert step.returncode == 1 and f"at volume {n}" in step.stderr, step.stderr
        assert "cannot create" not in step.stderr, step.stderr
        assert big.read_bytes() != (src / "d" / "big").read_bytes()  # caught half written
    last = pyrestore("-R", "-f", str(vols[-1]), cwd=out)
    assert last.returncode == 0, last.stderr
    assert_same_tree(src, out)


def test_an_incremental_waits_for_the_interrupted_restore(tmp_path: Path, volumes) -> None:
    src, vols = volumes
    out = tmp_path / "out"
    out.mkdir()
    pyrestore("-r", "-f", str(vols[0]), cwd=out, stdin="none\n")
    incremental = tmp_path / "l1"
    pydump("-1", "--quiet", "-T", f"@{DATE}", "-f", str(incremental), str(src))
    refused = pyrestore("-r", "-f", str(incremental), cwd=out)
    assert refused.returncode == 1
    assert "holds an interrupted restore" in refused.stderr and "-R and volume 2" in refused.stderr


def test_dash_M_rebuild_and_resume_find_the_volumes_by_their_numbers(tmp_path: Path, volumes) -> None:
    src, vols = volumes
    prefix = str(vols[0])[:-3]
    hidden = tmp_path / "hidden"
    vols[1].rename(hidden)  # volume 2 is not there yet: -r stops and checkpoints
    out = tmp_path / "out"
    out.mkdir()
    kill_at_the_volume_prompt(Path(prefix), out, "-M")  # after "cannot open input ...002"
    assert (out / "restoresymtable").exists()
    hidden.rename(vols[1])
    done = pyrestore("-R", "-M", "-f", prefix, cwd=out)  # opens vol002 itself, then vol003 ...
    assert done.returncode == 0, done.stderr
    assert "at volume 2" in done.stderr
    assert_same_tree(src, out)


def test_a_rebuild_told_none_resumes_across_the_remaining_volumes(tmp_path: Path, volumes) -> None:
    # "none" lets -r finish what it was writing after its checkpoint; -R makes it again cleanly
    src, vols = volumes
    out = tmp_path / "out"
    out.mkdir()
    stopped = pyrestore("-r", "-f", str(vols[0]), cwd=out, stdin="none\n")
    assert stopped.returncode == 1
    done = pyrestore("-R", "-f", str(vols[1]), cwd=out, stdin="".join(f"{v}\n" for v in vols[2:]))
    assert done.returncode == 0, done.stderr
    assert_same_tree(src, out)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: c_filesys keeps only a path's first 63
    bytes, and under pytest's long tmp_path two trees' names would be cut alike."""
    folder = Path(tempfile.mkdtemp(prefix="twin", dir="/tmp"))
    yield folder
    shutil.rmtree(folder)


def twin_dumps(tmp_path: Path, trees_in: Path, *second: str) -> tuple[Path, Path, Path]:
    """Two -M -B dumps started in the same second (one --snapshot-date): of
    ``home`` and of ``var`` (or of ``home`` again with *second*'s flags), both in *trees_in*."""
    trees = {}
    for name in ("home", "var"):
        tree = trees[name] = trees_in / name
        tree.mkdir()
        for i in range(20):
            (tree / f"h{i:02}").write_bytes(os.urandom(20_000))
    date = "2026-01-01 12:00:00"
    home, var = tmp_path / "out" / "home.", tmp_path / "out" / "var."
    home.parent.mkdir()
    pydump("-0", "--quiet", "--snapshot-date", date, "-M", "-B", "150", "-f", str(home), str(trees["home"]))
    other = trees["home"] if second else trees["var"]
    pydump("-0", "--quiet", "--snapshot-date", date, *second, "-M", "-B", "150", "-f", str(var), str(other))
    for n in (1, 2):
        assert Path(f"{home}00{n}").read_bytes()[4:8] == Path(f"{var}00{n}").read_bytes()[4:8]  # c_date alike
    return trees["home"], home, var


@pytest.mark.parametrize("second, differs", [((), "its file system is "), (("-L", "other"), "its label is other")])
def test_a_volume_of_another_dump_of_the_same_second_is_refused(tmp_path: Path, short_dir: Path,
                                                                  second: tuple[str, ...], differs: str) -> None:
    home, home_set, var_set = twin_dumps(tmp_path, short_dir, *second)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for n, chosen in ((1, home_set), (2, var_set), (3, home_set)):
        shutil.copyfile(f"{chosen}00{n}", mixed / f"v.00{n}")
    out = tmp_path / "r"
    out.mkdir()
    done = pyrestore("-r", "-y", "-M", "-f", str(mixed / "v."), cwd=out)
    assert done.returncode == 1, done.stderr
    assert f"v.002: volume of another dump ({differs}" in done.stderr
    # the right volume 2 in its place: the set restores whole
    shutil.copyfile(f"{home_set}002", mixed / "v.002")
    out = tmp_path / "r2"
    out.mkdir()
    done = pyrestore("-r", "-y", "-M", "-f", str(mixed / "v."), cwd=out)
    assert done.returncode == 0, done.stderr
    assert_same_tree(home, out)


def test_resume_refuses_a_volume_of_another_dump_of_the_same_second(tmp_path: Path, short_dir: Path) -> None:
    home, home_set, var_set = twin_dumps(tmp_path, short_dir)
    out = tmp_path / "r"
    out.mkdir()
    stopped = pyrestore("-r", "-f", f"{home_set}001", cwd=out, stdin="none\n")
    assert stopped.returncode == 1 and "stopped before volume 2" in stopped.stderr, stopped.stderr
    wrong = pyrestore("-R", "-f", f"{var_set}002", cwd=out)
    assert wrong.returncode == 1
    assert "var.002 is a volume of another dump than the restore to resume (its file system is " in wrong.stderr
    done = pyrestore("-R", "-f", f"{home_set}002", cwd=out, stdin=f"{home_set}003\n")
    assert done.returncode == 0, done.stderr
    assert_same_tree(home, out)
