"""Every blocking factor pydump accepts (4 to 256 KiB records) round-trips.

The dumps and the pyrestore side run in-process through the engines (a
subprocess per factor would be too slow for 253 factors); the real
``restore -t`` reads every image too.  Refusing 3 and 257 is tested in
test_pydump.py (the CLI message) and test_medium.py (the engine).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dumptool.dump import Dump, DumpOptions
from dumptool.format import TP_BSIZE, Header, header_byte_order
from dumptool.medium import MAX_NTREC, MIN_NTREC
from dumptool.restore import Restore, VolumeInput
from tapelib import open_device

RESTORE = "/sbin/restore"


def tiny_tree(root: Path) -> dict[str, bytes]:
    files = {"small": b"small\n", "d/three-blocks": bytes(range(256)) * 12 + b"tail", "d/empty": b""}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def dump(src: Path, output: str, ntrec: int) -> None:
    Dump(DumpOptions(source=str(src), output=output, ntrec=ntrec, quiet=True, progress_interval=0)).run()


def rebuild(image: str, out: Path) -> None:
    source = VolumeInput(image)
    try:
        engine = Restore(source)
        engine.rebuild(str(out))
    finally:
        source.close()
    assert not engine.failed


def test_every_blocking_factor_from_4_to_256_round_trips_through_a_file(tmp_path: Path) -> None:
    assert (MIN_NTREC, MAX_NTREC) == (4, 256)
    src = tmp_path / "src"
    files = tiny_tree(src)
    image = tmp_path / "image"
    real = os.access(RESTORE, os.X_OK)
    for ntrec in range(MIN_NTREC, MAX_NTREC + 1):
        dump(src, str(image), ntrec)
        data = image.read_bytes()
        assert len(data) % (ntrec * TP_BSIZE) == 0, ntrec
        assert Header.unpack(data[:TP_BSIZE], header_byte_order(data[:TP_BSIZE])).c_ntrec == ntrec
        out = tmp_path / f"out{ntrec}"
        out.mkdir()
        rebuild(str(image), out)
        for name, content in files.items():
            assert (out / name).read_bytes() == content, (ntrec, name)
        if real:
            listed = subprocess.run([RESTORE, "-t", "-f", str(image)], capture_output=True, text=True,
                                    stdin=subprocess.DEVNULL, cwd=tmp_path, timeout=60)
            assert listed.returncode == 0 and "./d/three-blocks" in listed.stdout, (ntrec, listed.stderr)


@pytest.mark.parametrize("ntrec", [4, 5, 10, 63, 128, 255, 256])
def test_tape_records_are_exactly_the_blocking_factor(tmp_path: Path, nst0: str, ntrec: int) -> None:
    src = tmp_path / "src"
    files = tiny_tree(src)
    dump(src, nst0, ntrec)
    sizes = []
    with open_device(nst0) as tape:
        tape.rewind()
        while record := tape.read(256 * TP_BSIZE):
            sizes.append(len(record))
        tape.rewind()
    assert sizes and set(sizes) == {ntrec * TP_BSIZE}
    out = tmp_path / "out"
    out.mkdir()
    rebuild(nst0, out)
    for name, content in files.items():
        assert (out / name).read_bytes() == content, name
