"""The engine's error family is closed: what leaves an entry point of Dump or
Restore is a DumpError, so pydump, pyrestore and the NDMP data service
handle one family (issue 11, item 6)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from dumptool.errors import DumpError, MediumError, engine_entry, engine_errors
from tapelib import Shelf, open_device


def test_a_tape_error_leaves_the_engine_as_a_medium_error_with_its_words_and_errno(tmp_path: Path) -> None:
    shelf = Shelf.create(tmp_path / "shelf", drives=1, slots=2)  # drive 0 holds no cartridge
    with pytest.raises(MediumError) as caught:
        with engine_errors():
            open_device(str(shelf.path / "nst0")).read(1024)
    assert caught.value.errno == errno.ENOMEDIUM
    assert "no cartridge" in caught.value.message


def test_an_os_error_leaves_the_engine_as_one_line_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "toc"
    with pytest.raises(DumpError) as caught:
        with engine_errors():
            open(missing, "wb")
    assert caught.value.message == f"{missing}: No such file or directory"


def test_a_broken_pipe_is_left_to_the_command(tmp_path: Path) -> None:
    """``pyrestore -t | head``: not the engine's failure; the command answers it (exit 141)."""
    with pytest.raises(BrokenPipeError):
        with engine_errors():
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_a_generator_entry_point_is_closed_too(tmp_path: Path) -> None:
    """Dump.steps is a generator: an error between two steps leaves it in the family."""
    @engine_entry
    def steps():
        yield 1
        (tmp_path / "no such dir" / "f").write_bytes(b"x")
        yield 2

    walk = steps()
    assert next(walk) == 1
    with pytest.raises(DumpError, match="No such file or directory"):
        next(walk)


def test_the_dump_and_restore_entry_points_are_closed() -> None:
    """Each public entry point is wrapped by engine_entry (its outermost decorator)."""
    from dumptool import Dump, Restore, errors

    for method in (Dump.steps, Dump.size_estimate, Restore.read_directories, Restore.list, Restore.extract,
                   Restore.rebuild, Restore.resume, Restore.compare):
        assert method.__code__.co_filename == errors.__file__, method.__qualname__
