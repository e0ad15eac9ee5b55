"""Running tapelib's console scripts as real processes, for the CLI tests.

The scripts run with this checkout first on PYTHONPATH, so they test the code
under test even where the venv's editable install maps no packages, and
without ``$TAPE`` unless a test sets it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import Iterator

from conftest import REPO, console_script


def checkout_env(**extra: str) -> dict[str, str]:
    """The environment for a script: this checkout importable, no ``$TAPE``,
    then ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("TAPE", None)
    env.update(extra)
    return env


def run_script(name: str, *args: str, env: dict[str, str] | None = None,
               cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run console script ``name`` with ``args``; never raises on failure."""
    return subprocess.run([console_script(name), *args], capture_output=True, text=True,
                          env=env if env is not None else checkout_env(), cwd=cwd, timeout=120)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a failed run (no traceback, nothing more)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextlib.contextmanager
def drive_held(device: str) -> Iterator[None]:
    """Another process holds ``device`` open for the duration of the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\n"
         "from tapelib import open_device\n"
         "drive = open_device(sys.argv[1])\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n"
         "drive.close()\n",
         device],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=checkout_env())
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
