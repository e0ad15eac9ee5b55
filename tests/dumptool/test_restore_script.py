"""pyrestore -F SCRIPT, as restore 0.4b47 runs it, side by side with the real restore.

restore runs the script at the beginning of each volume (volume 1 before it
opens the medium, each later one before it asks for it) as ``SCRIPT DEVICE
VOLUME``, DEVICE the name the volume will be read from (``-M``'s next
file); exit 0: the volume is ready, opened without asking; 1: asked for as
without a script (with ``-M`` the next file is opened anyway); any other:
"Restore aborted by the beginning of tape script", exit 1.  Each test runs
the real restore and pyrestore on the same volumes with the same script and
compares what the scripts were given, what was asked and what came out.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import console_script
from samples import RESTORE, fake_rsh
from spanning import Layout, build_tree, dump_across, load
from test_pydump import assert_same_tree, env, pydump

LAUNCHING = "Launching "


def run(command: list[str], cwd: Path, *, stdin: str = "", more_env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    """*command* in *cwd* (a TMPDIR of its own for the real restore), *stdin* as the operator's answers."""
    scratch = cwd.parent / f"rtmp-{time.monotonic_ns()}"
    scratch.mkdir()
    return subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=180,
                          env=dict(env(), TMPDIR=str(scratch), **(more_env or {})))


def script(folder: Path, name: str, body: str) -> Path:
    """A script that logs ``DEVICE VOLUME`` to ``folder/name.log`` then runs *body*."""
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "$1 $2" >> {folder / name}.log\n{body}\n')
    path.chmod(0o755)
    return path


def calls(path: Path) -> list[str]:
    """What the script at *path* was given, one ``DEVICE VOLUME`` a call (and forget them)."""
    log = Path(f"{path}.log")
    if not log.exists():
        return []
    lines = log.read_text().splitlines()
    log.unlink()
    return lines


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tree, -M prefix): a small tree dumped by pydump on four 300 KiB volume files."""
    base = tmp_path_factory.mktemp("script-volumes")
    tree = base / "src"
    tree.mkdir()
    for n in range(6):
        (tree / f"f{n}").write_bytes(os.urandom(200_000))
    (tree / "dir").mkdir()
    (tree / "dir" / "small").write_bytes(b"small\n")
    pydump("-0", "-q", "-M", "-B", "300", "-f", str(base / "vol"), str(tree))
    assert sorted(p.name for p in base.glob("vol*")) == ["vol001", "vol002", "vol003", "vol004"]
    return tree, base / "vol"


def both(tmp_path: Path, args: list[str], *, stdin: str = ""
         ) -> Iterator[tuple[str, tuple[subprocess.CompletedProcess, Path]]]:
    """``restore ARGS``, then ``pyrestore ARGS``, each run in a new folder of its
    own as the caller takes the next: (``real`` or ``ours``, (result, folder))."""
    for tool, program in (("real", RESTORE), ("ours", console_script("pyrestore"))):
        folder = tmp_path / tool
        folder.mkdir(parents=True)
        yield tool, (run([program, *args], folder, stdin=stdin), folder)


def test_with_M_the_script_runs_before_each_volume_with_its_file_and_number(
        tmp_path: Path, volumes: tuple[Path, Path]) -> None:
    tree, prefix = volumes
    for code in (0, 1):  # with -M, exit 1 opens the next file too: nothing is asked
        logged = script(tmp_path, f"exit{code}", f"exit {code}")
        seen = {}
        for tool, (done, folder) in both(tmp_path / f"run{code}", ["-r", "-M", "-F", str(logged),
                                                                   "-f", str(prefix)]):
            assert done.returncode == 0, (tool, done.stderr)
            assert done.stderr.count(LAUNCHING + str(logged)) == 4, (tool, done.stderr)
            assert "Mount" not in done.stderr and "Traceback" not in done.stderr
            (folder / "restoresymtable").unlink()
            assert_same_tree(tree, folder)
            seen[tool] = calls(logged)
        assert seen["ours"] == seen["real"] == [f"{prefix}{n:03d} {n}" for n in (1, 2, 3, 4)]


def test_exit_0_means_the_script_mounted_the_volume_no_question_asked(
        tmp_path: Path, volumes: tuple[Path, Path]) -> None:
    tree, prefix = volumes
    # the one device name every volume is read from; the script puts the volume asked for there
    mounter = script(tmp_path, "mount", f'cp "{prefix}00$2" "$1"')
    for mode in ("-r", "-x"):
        args = [mode, "-F", str(mounter), "-f", str(tmp_path / f"drive{mode}")]
        if mode == "-x":
            args[1:1] = ["-a", "-o"]  # restore -x reads through the volumes only with -a
        seen = {}
        for tool, (done, folder) in both(tmp_path / f"run{mode}", args, stdin=""):
            assert done.returncode == 0, (tool, done.stderr)
            assert "Mount" not in done.stderr and "volume #" not in done.stderr, (tool, done.stderr)
            if mode == "-r":
                (folder / "restoresymtable").unlink()
            assert_same_tree(tree, folder)
            seen[tool] = calls(mounter)
        assert seen["ours"] == seen["real"] == [f"{tmp_path}/drive{mode} {n}" for n in (1, 2, 3, 4)]


def test_exit_1_asks_for_the_volume_as_without_a_script(tmp_path: Path, volumes: tuple[Path, Path]) -> None:
    tree, prefix = volumes
    asking = script(tmp_path, "ask", "exit 1")
    answers = "".join(f"{prefix}{n:03d}\n" for n in (2, 3, 4))
    seen = {}
    for tool, (done, folder) in both(tmp_path, ["-r", "-F", str(asking), "-f", f"{prefix}001"],
                                     stdin=answers):
        assert done.returncode == 0, (tool, done.stderr)
        asked = done.stderr.count("Mount tape volume" if tool == "real" else "Mount volume")
        assert asked == 3, (tool, done.stderr)
        (folder / "restoresymtable").unlink()
        assert_same_tree(tree, folder)
        seen[tool] = calls(asking)
    # the device is the name last given: the answer for the volume before
    assert seen["ours"] == seen["real"] == [f"{prefix}001 1", f"{prefix}001 2", f"{prefix}002 3", f"{prefix}003 4"]


def test_another_exit_status_aborts_the_restore(tmp_path: Path, volumes: tuple[Path, Path]) -> None:
    tree, prefix = volumes
    at_first = script(tmp_path, "refuse", "exit 3")
    for tool, (done, folder) in both(tmp_path / "first", ["-r", "-M", "-F", str(at_first),
                                                          "-f", str(prefix)]):
        assert done.returncode == 1, (tool, done.stderr)
        assert "Restore aborted by the beginning of tape script" in done.stderr
        assert "Traceback" not in done.stderr
        assert list(folder.iterdir()) == [], tool  # nothing read, nothing made
        assert calls(at_first) == [f"{prefix}001 1"]
    at_second = script(tmp_path, "refuse2", '[ "$2" = 2 ] && exit 4; exit 0')
    for tool, (done, folder) in both(tmp_path / "second", ["-r", "-M", "-F", str(at_second),
                                                           "-f", str(prefix)]):
        assert done.returncode == 1, (tool, done.stderr)
        assert "Restore aborted by the beginning of tape script" in done.stderr
        assert calls(at_second) == [f"{prefix}001 1", f"{prefix}002 2"]
    # pyrestore's -r left its checkpoint: -R goes on from volume 2 (the script runs again there)
    ours = tmp_path / "second" / "ours"
    go_on = script(tmp_path, "goon", "exit 0")
    resumed = run([console_script("pyrestore"), "-R", "-M", "-F", str(go_on), "-f", str(prefix)], ours)
    assert resumed.returncode == 0, resumed.stderr
    assert calls(go_on) == [f"{prefix}{n:03d} {n}" for n in (2, 3, 4)]
    (ours / "restoresymtable").unlink()
    assert_same_tree(tree, ours)


LAYOUT = Layout(capacity=879405, ntrec=10, files=28, data=2012116, seed=247094926, middle=956137)


def test_on_a_shelf_drive_the_script_loads_each_cartridge(tmp_path: Path) -> None:
    """A 3-cartridge dump read from the shelf drive by pyrestore (itself and
    through pyrmt) and by the real restore (through pyrmt), the script
    changing cartridges with pytape."""
    tree = build_tree(tmp_path / "src", LAYOUT)
    shelf, nst0, volumes = dump_across(tmp_path, LAYOUT, tree)
    assert volumes == ["FIRST", "MIDDLE", "LAST"]
    pytape = console_script("pytape")
    changer = script(tmp_path, "changer",
                     f'set -e; case $2 in 1) b=FIRST;; 2) b=MIDDLE;; 3) b=LAST;; *) exit 2;; esac\n'
                     f'{pytape} unload {shelf.path} >/dev/null; {pytape} load {shelf.path} $b >/dev/null')
    rsh = fake_rsh(tmp_path, console_script("pyrmt"))
    real_env = {"RSH": str(rsh), "RMT": console_script("pyrmt")}
    seen = {}
    for tool, program, device in (("ours", console_script("pyrestore"), nst0),
                                  ("ours-rmt", console_script("pyrestore"), f"localhost:{nst0}"),
                                  ("real", RESTORE, f"localhost:{nst0}")):
        load(shelf, "LAST")  # the script puts volume 1 in itself
        folder = tmp_path / tool
        folder.mkdir()
        done = run([program, "-r", "-F", str(changer), "-f", device], folder, more_env=real_env)
        assert done.returncode == 0, (tool, done.stderr)
        assert "Mount" not in done.stderr, (tool, done.stderr)
        assert shelf.status().drives[0].barcode == "LAST"
        (folder / "restoresymtable").unlink()
        assert_same_tree(tree, folder)
        seen[tool] = calls(changer)
    # the drive's name, without "localhost:" (restore gives the script the name on the drive's host)
    assert seen["ours"] == seen["ours-rmt"] == seen["real"] == [f"{nst0} {n}" for n in (1, 2, 3)]
