"""A short seeded run of the image mutation fuzzer (``image_fuzz``): on every
damaged image pyrestore ends without a traceback, in time, writes nothing
outside its target and gets back at least the files the real restore gets
back.  ``bench/fuzz.py`` runs the long version."""

from __future__ import annotations

from pathlib import Path

import pytest

import image_fuzz
from samples import needs_real_dump

# On the code before issue 9 this seed's 18 mutants gave a traceback (a directory's
# di_size 2**64-1) and two mutants with fewer files than the real restore (an unknown
# c_type; a bad checksum on the TS_CLRI header).
SEED = 6
ROUNDS = 2
COUNT = ROUNDS * len(image_fuzz.KINDS)   # each class on two of the four images

pytestmark = [pytest.mark.root, needs_real_dump]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def results(workdir: Path) -> list[image_fuzz.FuzzResult]:
    return image_fuzz.run(SEED, COUNT, workdir, timeout=20)


def _report(bad: list[image_fuzz.FuzzResult]) -> str:
    return "\n".join(f"#{r.index} {r.kind} on {r.image}: {'; '.join(r.problems)} ({r.mutation}) {r.detail}"
                     for r in bad)


def test_fuzz_run_covers_every_class_and_image(results: list[image_fuzz.FuzzResult]) -> None:
    assert {r.kind for r in results} == set(image_fuzz.KINDS)
    assert {r.image for r in results} == {"pydump", "pydump-z", "realdump", "realdump-z"}
    assert all(len({r.image for r in results if r.kind == k}) == ROUNDS for k in image_fuzz.KINDS)
    # the real restore gets something back from most mutants: the mutants are damaged, not destroyed
    assert sum(r.recovered_real for r in results) > COUNT * results[0].files // 2


def test_no_mutant_makes_pyrestore_print_a_traceback(results: list[image_fuzz.FuzzResult]) -> None:
    bad = [r for r in results if any(p.startswith("traceback") for p in r.problems)]
    assert not bad, _report(bad)


def test_no_mutant_makes_pyrestore_hang(results: list[image_fuzz.FuzzResult]) -> None:
    bad = [r for r in results if any(p.startswith("hang") for p in r.problems)]
    assert not bad, _report(bad)


def test_no_mutant_makes_pyrestore_write_outside_its_target(results: list[image_fuzz.FuzzResult]) -> None:
    bad = [r for r in results if any(p.startswith("escape") for p in r.problems)]
    assert not bad, _report(bad)


def test_pyrestore_recovers_as_many_files_as_the_real_restore_from_every_mutant(
        results: list[image_fuzz.FuzzResult]) -> None:
    """Per mutant, so per class too: the files that come back with the right bytes."""
    bad = [r for r in results if r.recovered < r.recovered_real]
    assert not bad, "\n".join(f"#{r.index} {r.kind} on {r.image}: {r.recovered} files, the real restore "
                              f"{r.recovered_real} ({r.mutation})" for r in bad)


def test_the_sandbox_sees_a_write_beside_the_target(tmp_path: Path) -> None:
    """The escape check itself: a file made beside the target is reported."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"a")
    box = image_fuzz.Sandbox(tmp_path, src)
    before = box.watched()
    (box.target / "inside").write_bytes(b"fine")
    assert box.watched() == before
    (box.sentinel / "a").write_bytes(b"b")
    (box.root / "outside").write_bytes(b"x")
    assert image_fuzz.changes(before, box.watched()) == [f"created {box.root / 'outside'}",
                                                          f"changed {box.sentinel / 'a'}"]


def test_a_seed_makes_the_same_mutants_and_each_differs_from_its_image(
        workdir: Path, results: list[image_fuzz.FuzzResult]) -> None:
    _, images = image_fuzz.build_images(workdir)   # built by the run, reused
    raws = {name: path.read_bytes() for name, path in images.items()}
    for index in range(COUNT):
        kind, name, mutant, how = image_fuzz.make_mutant(SEED, index, raws)
        assert (kind, name, how) == (results[index].kind, results[index].image, results[index].mutation)
        assert image_fuzz.make_mutant(SEED, index, raws)[2] == mutant
        assert mutant != raws[name], how
