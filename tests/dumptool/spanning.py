"""Dumps that span shelf cartridges, checked end to end.

A :class:`Layout` is one draw of the property: the first cartridge's size
(and at times a second small one's), the blocking factor and a tree about
as large as those or up to 3 times larger.  :func:`check_layout` builds the
tree, dumps it with ``pydump -0 --no-prompt -f SHELF/nst0`` (the changer
loads the next blank cartridge at the end of each) and reads it back three
ways: ``pyrestore -r`` and the real Linux ``restore -r`` (through
``pyrmt``) reading the drive itself, the cartridges changed when they ask
for the next volume, and ``pyrestore -C`` from copies of the cartridges
(``-M``).  Shared by ``test_multivolume.py`` (a short seeded run) and
``bench/multivolume.py`` (as many draws as one likes).
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

from conftest import answering, console_script
from samples import RESTORE, fake_rsh, stamp_times, tape_copy
from tapelib import Shelf
from test_pydump import assert_same_tree, env, pydump, pyrestore

#: The blocking factors drawn, and the small cartridges' sizes (bytes).
BLOCKING = (10, 20, 32, 64)
SMALL = (600 * 1024, 1200 * 1024)
#: The last cartridge: room for anything a layout dumps.
BIG = 10 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Layout:
    capacity: int   # bytes of the first cartridge (its early-warning zone is the default)
    ntrec: int      # -b
    files: int      # regular files in the tree
    data: int       # bytes of file data in all, about or more than the small cartridges take
    seed: int       # of the tree's sizes and bytes
    middle: int = 0  # bytes of a second small cartridge before the big one (0: none)
    compress: bool = False  # -z: compressed records (random data: mostly stored as they are)

    def __str__(self) -> str:
        middle = f"+{self.middle}" if self.middle else ""
        z = "-z" if self.compress else ""
        return f"cap{self.capacity}{middle}-b{self.ntrec}{z}-n{self.files}-d{self.data}-s{self.seed}"

    @property
    def cartridges(self) -> list[tuple[str, int]]:
        """(barcode, capacity) of the cartridges, in the order they are filled."""
        return [("FIRST", self.capacity), *([("MIDDLE", self.middle)] if self.middle else []), ("LAST", BIG)]


def draw(rng: random.Random) -> Layout:
    """One layout: half the time a tree about the size of the small
    cartridges (its end falls near the end of a tape, where a full tape
    meets the dump's last records), else one up to 3 times as large; 3 to
    300 files; one time in three a second small cartridge (three volumes),
    one in five compressed (-z)."""
    capacity = rng.randint(*SMALL)
    middle = rng.randint(*SMALL) if rng.random() < 1 / 3 else 0
    factor = rng.uniform(0.93, 1.1) if rng.random() < 0.5 else rng.uniform(1.1, 3.0)
    return Layout(capacity=capacity, ntrec=rng.choice(BLOCKING), files=rng.randint(3, rng.choice((30, 300))),
                  data=int((capacity + middle) * factor), seed=rng.randrange(1 << 30), middle=middle,
                  compress=rng.random() < 0.2)


def layouts(seed: int, count: int) -> list[Layout]:
    rng = random.Random(seed)
    return [draw(rng) for _ in range(count)]


def build_tree(root: Path, layout: Layout) -> Path:
    """Files of random sizes summing to ``layout.data`` (some empty, some a
    few bytes, some not a whole KiB) in a few folders, a hard link and a
    symbolic link; every time stamped."""
    rng = random.Random(layout.seed)
    root.mkdir(parents=True)
    folders = [root] + [root / f"d{i}" for i in range(rng.randint(1, 4))]
    for folder in folders[1:]:
        folder.mkdir()
    cuts = sorted(rng.randrange(layout.data) for _ in range(layout.files - 1))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, layout.data])]
    for i, size in enumerate(sizes):
        (rng.choice(folders) / f"f{i:03d}").write_bytes(rng.randbytes(size))
    first = next(root.rglob("f*"))
    os.link(first, root / "hardlink")
    os.symlink(os.path.relpath(first, root), root / "symlink")
    stamp_times(root)
    return root


def dump_across(workdir: Path, layout: Layout, tree: Path) -> tuple[Shelf, str, list[str]]:
    """A shelf of one drive holding FIRST, then blank cartridges in the
    slots (:attr:`Layout.cartridges`), and ``tree`` dumped from FIRST on;
    the barcodes of its volumes.  It must span when the tree's data alone
    is more than the small cartridges hold."""
    shelf = Shelf.create(workdir / "shelf", drives=1, slots=4)
    for barcode, capacity in layout.cartridges:
        shelf.new_cartridge(barcode, capacity=capacity)
    shelf.load("FIRST", 0)
    nst0 = str(shelf.device_path(0, rewind=False))
    result = pydump("-0", "--no-prompt", *(["-z"] if layout.compress else []), "-b", str(layout.ntrec),
                    "-f", nst0, str(tree), check=False)
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 0, f"{layout}: pydump failed:\n{err}"
    assert "Traceback" not in err, err
    names = [barcode for barcode, _ in layout.cartridges]
    volumes = names[:names.index(shelf.status().drives[0].barcode) + 1]
    small = layout.capacity + layout.middle
    assert len(volumes) == len(names) or layout.data < small, f"{layout}: the dump did not span\n{err}"
    return shelf, nst0, volumes


def load(shelf: Shelf, barcode: str) -> None:
    """``barcode`` into drive 0, at BOT."""
    if shelf.status().drives[0].barcode is not None:
        shelf.unload(0)
    shelf.load(barcode, 0)


def copy_volumes(workdir: Path, shelf: Shelf, nst0: str, volumes: list[str]) -> Path:
    """``vol001``, ``vol002``, ...: copies of the volumes' cartridges; returns the -M prefix."""
    for n, barcode in enumerate(volumes, 1):
        load(shelf, barcode)
        (workdir / f"vol{n:03d}").write_bytes(tape_copy(nst0))
    return workdir / "vol"


def restore_from_the_drive(command: list[str], cwd: Path, environ: dict[str, str], question: bytes,
                           answer: bytes, layout: Layout, shelf: Shelf, nst0: str, volumes: list[str]) -> str:
    """Run a restore reading the shelf drive from FIRST (put at BOT there);
    each time it asks ``question`` for the next volume, that volume's
    cartridge goes into the drive and ``answer`` is typed.  Fails unless it
    asks once per later volume and exits 0; returns what it printed."""
    load(shelf, volumes[0])
    return answering(command, cwd, environ, question, answer, len(volumes) - 1,
                     lambda n: load(shelf, volumes[n]), timeout=120,
                     what=f"{layout} ({len(volumes)} volume(s)): ")


def check_pyrestore(workdir: Path, layout: Layout, tree: Path, shelf: Shelf, nst0: str, volumes: list[str],
                    prefix: Path) -> None:
    """``pyrestore -r -f SHELF/nst0`` (the operator changing cartridges when
    asked), then ``pyrestore -C -M`` of the copies."""
    out = workdir / "py-r"
    out.mkdir()
    restore_from_the_drive([console_script("pyrestore"), "-r", "-f", nst0], out, env(),
                           b"enter its path ('none' if there is none): ", nst0.encode() + b"\n",
                           layout, shelf, nst0, volumes)
    assert_same_tree(tree, out)
    compared = pyrestore("-C", "-M", "-D", str(tree), "-f", str(prefix), cwd=workdir)
    assert compared.returncode == 0, f"{layout}: pyrestore -C: {compared.stdout}{compared.stderr}"


def check_real_restore_through_rmt(workdir: Path, layout: Layout, tree: Path, shelf: Shelf, nst0: str,
                                   volumes: list[str]) -> None:
    """The real ``restore -r -f localhost:SHELF/nst0`` through pyrmt; when it
    asks for the next volume (it closed the drive first), the default name."""
    rsh = fake_rsh(workdir, console_script("pyrmt"))
    out = workdir / "real-r"
    out.mkdir()
    scratch = workdir / "rtmp"
    scratch.mkdir()
    # restore reads 32 KiB records unless told (-b) of longer ones.
    blocking = ["-b", str(layout.ntrec)] if layout.ntrec > 32 else []
    restore_from_the_drive([RESTORE, "-r", *blocking, "-f", f"localhost:{nst0}"], out,
                           dict(env(), RSH=str(rsh), RMT=console_script("pyrmt"), TMPDIR=str(scratch)),
                           b"otherwise enter tape name", b"\n", layout, shelf, nst0, volumes)
    assert_same_tree(tree, out)


def check_layout(workdir: Path, layout: Layout) -> None:
    """The whole property for one layout (raises AssertionError when it fails)."""
    tree = build_tree(workdir / "src", layout)
    shelf, nst0, volumes = dump_across(workdir, layout, tree)
    prefix = copy_volumes(workdir, shelf, nst0, volumes)
    check_pyrestore(workdir, layout, tree, shelf, nst0, volumes, prefix)
    check_real_restore_through_rmt(workdir, layout, tree, shelf, nst0, volumes)
