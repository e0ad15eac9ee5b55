"""Fixtures for the Volume tests (a module, not a conftest: tests/conftest.py owns that name).

A small volume with 4 KiB blocks, so ordinary test files span many blocks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from snapfs import Volume, fsck


@pytest.fixture
def voldir(tmp_path: Path) -> Path:
    return tmp_path / "vol"


@pytest.fixture
def vol(voldir: Path):
    """A 4 MiB volume with 4 KiB blocks and 200 inodes; fsck must be clean when the test ends."""
    v = Volume.create(voldir, 4 * 1024 * 1024, 200, name="testvol", block_size=4096)
    yield v
    if not v.closed:
        report = fsck(v)
        v.close()
        assert report.clean, report.problems
