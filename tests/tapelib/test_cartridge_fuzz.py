"""A short seeded run of the cartridge mutation fuzzer (issue 9, "Must show"):
no mutant of a cartridge, its sidecar or the drive state makes a tool show a
traceback, hang, or destroy a byte the mutant had.  ``bench/fuzz.py`` runs
the long version."""

from __future__ import annotations

from pathlib import Path

from cartridge_fuzz import KINDS, OUTCOMES, run, summary


def test_no_cartridge_mutant_makes_a_traceback_a_hang_or_destroys_data(tmp_path: Path) -> None:
    results = run(seed=9, count=8 * len(KINDS), workdir=tmp_path)
    assert {r.kind for r in results} == set(KINDS)
    assert {r.outcome for r in results} <= set(OUTCOMES)
    bad = [f"{r.kind} {r.outcome}: {r.detail}" for r in results if r.outcome != "ok"]
    assert not bad, summary(results) + "\n" + "\n".join(bad)
