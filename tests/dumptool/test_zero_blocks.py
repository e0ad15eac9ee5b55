"""Files with all-zero 1 KiB blocks, judged by the real restore 0.4b47 and by pyrestore.

pydump maps an all-zero slice as a hole, except a file's partial last one:
restore 0.4b47 flushes its buffer of data blocks at a hole cut to the bytes
left at that hole, so a partial hole right after data lost the end of that
data (1,024 x ``A`` + one NUL came back as ``A`` + 1,024 NULs, and
``restore -C`` called it different).  Every size around each 1 KiB and
4 KiB boundary, with the zero block first, in the middle, last and alone,
must come back byte for byte from ``restore -r``, ``restore -x`` and
pyrestore, and compare equal under ``restore -C``; both pydump paths (fast
and ``-B``), and the real dump's image of the same files through pyrestore.
"""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest

from samples import real_dump_of, real_restore
from test_pydump import pydump, pyrestore

KIB = 1024

#: Sizes around every 1 KiB boundary up to 9 KiB, and around 4/8/64 KiB and
#: one header's worth (512 KiB, where the fast path starts a second header).
SIZES = sorted({n * KIB + d for n in range(1, 10) for d in (-1, 0, 1)}
               | {b + d for b in (4096, 8192, 65536, 512 * KIB) for d in (-1, 0, 1)})


def _content(size: int, where: str) -> bytes:
    """``size`` bytes of ``A``, with the block at ``where`` (first, middle,
    last or only: every block) all zero."""
    blocks = -(-size // KIB)
    data = bytearray(b"A" * size)
    zero = {"first": [0], "middle": [blocks // 2], "last": [blocks - 1], "only": range(blocks)}[where]
    for k in zero:
        data[k * KIB:(k + 1) * KIB] = bytes(len(data[k * KIB:(k + 1) * KIB]))
    return bytes(data)


def zero_block_tree(root: Path) -> list[str]:
    """The files, plus sparse ones whose partial last block is in a real hole
    (the engine's SEEK_HOLE path); their names."""
    root.mkdir()
    names = []
    for size in SIZES:
        for where in ("first", "middle", "last", "only"):
            name = f"{size}-{where}"
            (root / name).write_bytes(_content(size, where))
            names.append(name)
    (root / "one-nul").write_bytes(b"A" * KIB + b"\0")  # the file
    names.append("one-nul")
    for data, size in ((b"A" * 8192, 8192 + 5), (b"A" * 4096, 3 * 4096 + 1), (b"A" * KIB, KIB + 1)):
        name = f"sparse-{len(data)}-to-{size}"
        with open(root / name, "wb") as f:
            f.write(data)
            f.truncate(size)
        names.append(name)
    return names


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("zero") / "src"
    return root, zero_block_tree(root)


def _differences(src: Path, out: Path, names: list[str]) -> list[str]:
    return [n for n in names if not (out / n).is_file() or not filecmp.cmp(src / n, out / n, shallow=False)]


@pytest.mark.parametrize("path", ["fast", "blocks"])
def test_real_restore_and_pyrestore_get_every_zero_block_file_back(
        tmp_path: Path, tree: tuple[Path, list[str]], path: str) -> None:
    src, names = tree
    image = tmp_path / "l0.dump"
    extra = ["-B", "1000000"] if path == "blocks" else []
    pydump("-0", "--quiet", *extra, "-f", str(image), str(src))
    for how in ("-r", "-x"):
        out = tmp_path / f"real{how}"
        out.mkdir()
        real_restore(how, *(["-a"] if how == "-x" else []), "-f", str(image), cwd=out, tmp=tmp_path)
        assert _differences(src, out, names) == [], f"restore {how}"
    # restore copies -D into its 64-byte c_filesys: keep it short (relative)
    compared = real_restore("-C", "-D", src.name, "-f", str(image), cwd=src.parent, tmp=tmp_path, check=False)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    out = tmp_path / "py"
    out.mkdir()
    pyrestore("-r", "-f", str(image), cwd=out, check=True)
    assert _differences(src, out, names) == []


def test_pyrestore_reads_the_real_dumps_image_of_them(tmp_path: Path, tree: tuple[Path, list[str]]) -> None:
    src, names = tree
    image = real_dump_of(src, tmp_path, size="32M")
    out = tmp_path / "py"
    out.mkdir()
    pyrestore("-r", "-f", str(image), cwd=out, check=True)
    assert _differences(src, out, names) == []
    assert os.path.getsize(out / "one-nul") == KIB + 1
