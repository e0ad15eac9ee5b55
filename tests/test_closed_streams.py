"""A command started with a standard stream closed (the shell's ``>&-``, ``<&-``).

Every command gets /dev/null on a closed fd 0, 1 or 2 before its body runs
(snapdump.standard_streams, from snapdump.exits.run): no file it opens can take
that number (pydump ``-f -`` once wrote its image into its own session file
and recorded the dump), and no command dies on ``sys.stdout`` being ``None``.
A command that needs the stream refuses in one line before it does anything.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import console_script, one_line

COMMANDS = ["pydump", "pyrestore", "snapfs", "pymt", "pytape", "pyrmt", "pyndmpd"]


def closed(fds: tuple[int, ...], *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a console script with standard fds *fds* closed; stderr captured unless 2 is closed."""
    def close() -> None:
        for fd in fds:
            os.close(fd)

    command = [console_script(argv[0]), *argv[1:]]
    return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL if 2 in fds else subprocess.PIPE,
                          text=True, timeout=120, cwd=cwd, preexec_fn=close)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a\n")
    out = tmp_path / "img"
    done = subprocess.run([console_script("pydump"), "-0", "--quiet", "-f", str(out), str(src)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("fds", [(0,), (1,), (0, 1, 2)])
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_runs_with_a_standard_stream_closed(command: str, fds: tuple[int, ...]) -> None:
    result = closed(fds, command, "--version")
    assert result.returncode == 0, result.stderr
    assert not result.stderr


def test_pydump_to_a_closed_stdout_is_refused_and_records_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a\n")
    dumpdates = tmp_path / "dumpdates"
    state = Path(os.environ["SNAPDUMP_STATE_DIR"])
    before = {p: p.stat().st_size for p in state.rglob("*") if p.is_file()}
    result = closed((1,), "pydump", "-0", "-u", "-D", str(dumpdates), "-f", "-", str(src))
    one_line(result, "  DUMP: standard output is closed: -f - writes the image there")
    assert not dumpdates.exists()
    after = {p: p.stat().st_size for p in state.rglob("*") if p.is_file()}
    grown = {p: n for p, n in after.items() if n > before.get(p, 0) and n >= 10240}
    assert not grown, f"an image went into {grown}"
    one_line(closed((1,), "pydump", "-0", "-S", str(src)), "standard output is closed: -S prints its estimate")


def test_pyrestore_refuses_what_needs_a_closed_stream(image: Path) -> None:
    one_line(closed((0,), "pyrestore", "-t", "-f", "-"), "pyrestore: standard input is closed: -f - reads the image")
    one_line(closed((0,), "pyrestore", "-t", "-f", str(image), "-X", "-"),
             "pyrestore: standard input is closed: -X - reads the names")
    one_line(closed((0,), "pyrestore", "-i", "-f", str(image)), "pyrestore: standard input is closed: -i reads")
    one_line(closed((1,), "pyrestore", "-t", "-f", str(image)), "pyrestore: standard output is closed: -t lists")


def test_pyrestore_asking_for_a_volume_on_a_closed_stdin_says_so(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(os.urandom(20000))
    done = subprocess.run([console_script("pydump"), "-0", "--quiet", "-M", "-B", "300", "-f",
                           str(tmp_path / "vol"), str(src)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "target"
    target.mkdir()
    result = closed((0,), "pyrestore", "-x", "-f", str(tmp_path / "vol001"), cwd=target)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.endswith("pyrestore: the dump continues on volume 2 and standard input is closed: "
                                  "there is nothing to ask for it on\n")


@pytest.mark.parametrize("fd", [0, 1])
def test_pyrmt_needs_stdin_and_stdout(fd: int) -> None:
    one_line(closed((fd,), "pyrmt"), f"pyrmt: standard {'input' if fd == 0 else 'output'} is closed")


def test_snapfs_stream_write_from_a_closed_stdin_is_refused(tmp_path: Path) -> None:
    one_line(closed((0,), "snapfs", "stream", "write", str(tmp_path), "f", "s1"),
             "snapfs: standard input is closed: stream write reads")


def test_a_command_whose_output_is_closed_does_its_work(tmp_path: Path, nst0: str) -> None:
    """pymt and pytape act and exit 0; their lines went to /dev/null."""
    result = closed((1,), "pymt", "-f", nst0, "rewind")
    assert (result.returncode, result.stderr) == (0, "")
    result = closed((1,), "pytape", "status", str(Path(nst0).parent))
    assert (result.returncode, result.stderr) == (0, "")
