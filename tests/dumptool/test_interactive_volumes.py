"""``pyrestore -i`` on a multi-volume dump in a shelf drive: a second
``extract`` with volume 2 in the drive asks for volume 1, as restore 0.4b47's
``getvol(1)`` does (after an extract restore forgets the volume it holds, so
each later one starts by asking for volume 1): the drive is let go of, a
``-F`` script runs first (exit 0: the volume is ready), on a shelf the
cartridge holding volume 1 is offered (``yes`` loads it; ``-a``: loaded
without asking), then the pass reads volume 1 and asks for volume 2 again.

A two-cartridge dump (FIRST, LAST) by pydump; the real restore reads the
same drive through pyrmt for the side-by-side test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import console_script
from samples import RESTORE, fake_rsh
from spanning import Layout, build_tree, dump_across, load
from tapelib import Shelf
from test_pydump import assert_same_tree, env
from test_restore_shelf import ASKED, pyrestore_on_a_pty
from test_volume_prompt import converse

LAYOUT = Layout(capacity=600 * 1024, ntrec=10, files=8, data=900_000, seed=5150)
PROMPT = b"pyrestore > "


@pytest.fixture
def spanned(tmp_path: Path) -> tuple[Shelf, str, Path]:
    """(shelf, its drive 0, the tree) after a dump onto FIRST and LAST, both
    back in their slots, FIRST then loaded."""
    tree = build_tree(tmp_path / "src", LAYOUT)
    shelf, nst0, volumes = dump_across(tmp_path, LAYOUT, tree)
    assert volumes == ["FIRST", "LAST"]
    load(shelf, "FIRST")
    return shelf, nst0, tree


def empty(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def test_a_second_extract_with_volume_2_in_the_drive_loads_volume_1_from_the_slots(
        tmp_path: Path, spanned: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = spanned
    out = tmp_path / "out"
    out.mkdir()
    commands = ["add .", "extract", "extract", "quit"]
    in_drive = []

    def operator(n: int) -> str:
        in_drive.append(shelf.status().drives[0].barcode)  # nothing moved before the answer
        if n == 2:  # volume 1 for the second pass: what the first one made goes, to be made again
            empty(out)
        return "yes"

    pid, fd = pyrestore_on_a_pty(out, "-i", "-f", nst0)
    seen, code = converse(fd, pid, {PROMPT: lambda n: commands[n - 1], ASKED: operator})
    assert code == 0, seen
    assert "Traceback" not in seen and "extract:" not in seen, seen
    assert [int(v) for v in re.findall(r"Mount volume (\d+)", seen)] == [2, 1, 2], seen
    assert "Mount volume 1 (on FIRST in slot 1: 'yes' loads it into drive 0)" in seen
    assert in_drive == ["FIRST", "LAST", "FIRST"]
    assert seen.count("loaded FIRST from slot 1") == 1 and seen.count("loaded LAST from slot 2") == 2
    assert shelf.status().drives[0].barcode == "LAST"
    assert_same_tree(tree, out)


def test_with_a_it_loads_volume_1_without_asking_and_none_keeps_the_session(
        tmp_path: Path, spanned: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = spanned
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([console_script("pyrestore"), "-i", "-a", "-u", "-f", nst0], cwd=out, env=env(),
                          input="add .\nextract\nextract\nquit\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Mount volume" not in done.stderr and "extract:" not in done.stdout, done.stdout + done.stderr
    assert done.stderr.count("loaded FIRST from slot 1") == 1 and done.stderr.count("loaded LAST from slot 2") == 2
    assert_same_tree(tree, out)
    # volume 1 not given ("none"): that extract says so in one line, the session goes on, the
    # next extract asks for volume 1 again
    empty(out)
    load(shelf, "FIRST")
    done = subprocess.run([console_script("pyrestore"), "-i", "-u", "-f", nst0], cwd=out, env=env(),
                          input="add .\nextract\nyes\nextract\nnone\nextract\nyes\nyes\nquit\n",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert [int(v) for v in re.findall(r"Mount volume (\d+)", done.stderr)] == [2, 1, 1, 2], done.stderr
    assert done.stdout.count("extract: volume 1 was not given") == 1, done.stdout
    assert_same_tree(tree, out)


def test_a_script_loads_each_volume_as_for_the_real_restore(
        tmp_path: Path, spanned: tuple[Shelf, str, Path]) -> None:
    """-F with a script that changes cartridges with pytape: restore 0.4b47
    (through pyrmt) and pyrestore run it for volumes 1, 2, then for the
    second extract 1 and 2 again, and ask nothing.  There restore 0.4b47
    goes wrong: getvol(1) starts its block count (blksread) again but not
    the tape's (tpblksread), so on volume 2 it takes the whole volume for
    blocks it already read, skips them and wants a volume 3 (the script,
    given 3, aborts it).  pyrestore reads volume 2 again and ends."""
    shelf, nst0, tree = spanned
    pytape = console_script("pytape")
    log = tmp_path / "changer.log"
    changer = tmp_path / "changer"
    changer.write_text(f'#!/bin/sh\necho "$1 $2" >> {log}\n'
                       f'set -e; case $2 in 1) b=FIRST;; 2) b=LAST;; *) exit 2;; esac\n'
                       f'{pytape} unload {shelf.path} >/dev/null; {pytape} load {shelf.path} $b >/dev/null\n')
    changer.chmod(0o755)
    rsh = fake_rsh(tmp_path, console_script("pyrmt"))
    calls, done = {}, {}
    for tool, program, device in (("real", RESTORE, f"localhost:{nst0}"),
                                  ("ours", console_script("pyrestore"), nst0)):
        load(shelf, "LAST")  # the script puts volume 1 in itself
        folder = tmp_path / tool
        folder.mkdir()
        scratch = tmp_path / f"tmp-{tool}-{time.monotonic_ns()}"
        scratch.mkdir()
        # restore takes what it extracted off the list: "add ." again (pyrestore's list stays)
        done[tool] = subprocess.run([program, "-i", "-a", "-o", "-u", "-F", str(changer), "-f", device],
                                    cwd=folder, input="add .\nextract\nadd .\nextract\nquit\n",
                                    capture_output=True, text=True, timeout=180,
                                    env=dict(env(), RSH=str(rsh), RMT=console_script("pyrmt"), TMPDIR=str(scratch)))
        assert "Mount" not in done[tool].stderr, (tool, done[tool].stderr)
        calls[tool] = log.read_text().splitlines()
        log.unlink()
    ours = done["ours"]
    assert ours.returncode == 0, ours.stderr
    assert ours.stderr.count(f"Launching {changer}") == 4 and "Traceback" not in ours.stderr, ours.stderr
    assert calls["ours"] == [f"{nst0} {n}" for n in (1, 2, 1, 2)]
    assert_same_tree(tree, tmp_path / "ours")
    assert calls["real"] == calls["ours"] + [f"{nst0} 3"], done["real"].stderr
    assert done["real"].returncode == 1 and "Restore aborted by the beginning of tape script" in done["real"].stderr
