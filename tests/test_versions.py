"""Every command answers --version with its name and the project's release, and exits 0."""

from __future__ import annotations

import subprocess
from importlib import metadata

import pytest
from conftest import console_script

RELEASE = metadata.version("snapdump")


@pytest.mark.parametrize("name", ["pydump", "pyrestore", "pytape", "pyrmt", "pyndmpd", "snapfs"])
def test_version(name: str) -> None:
    r = subprocess.run([console_script(name), "--version"], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, f"{name} {RELEASE}", "")


def test_pymt_version_is_mt_st_s() -> None:
    r = subprocess.run([console_script("pymt"), "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith(f"pymt (snapdump {RELEASE})\n"), r.stdout
