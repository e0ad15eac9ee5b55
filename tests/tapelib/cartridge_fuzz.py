"""A mutation fuzzer for loopback cartridges: damage a cartridge, its sidecar
or the drive state, run the tools over it, and see whether anything broke.

``run(seed, count, workdir)`` builds one cartridge holding several tape files
written by the real tools (pydump images at two blocking factors, so records
of one and of two AWSTAPE segments), then makes ``count`` mutants of it, each
in a fresh copy of the shelf:

* ``awstape-flip``: one to three bytes flipped (half of them in a header);
* ``awstape-truncate``: the file cut at a random offset or near a header;
* ``awstape-zero``: a range zeroed;
* ``awstape-length``: a header's length or previous-length field changed;
* ``awstape-dup`` / ``awstape-swap``: a block duplicated in place, or two
  neighbouring blocks swapped;
* ``json-field``: a field of the cartridge's ``.json`` given a wrong type or
  value, deleted, or the file cut short;
* ``state-field``: a field of the shelf's ``state.json`` (the drive's
  position, barcode, the slots) given a wrong type or value, or deleted.

Over each mutant one subprocess (with a timeout) runs, one after another and
each opening the drive afresh as a separate tool would: ``pymt status``, three
reads from wherever the drive stands, ``pymt eod``, an append (one record
written after the eod, then the close's filemark), ``pymt status`` again and a
read of the whole tape from BOT.  The outcome is

* ``traceback``: a Python traceback on stderr;
* ``hang``: the subprocess outlived its timeout;
* ``destroyed``: the cartridge file no longer starts with every byte the
  mutant had (nothing the tools did may cut or overwrite it; an append may
  only add after it), or a tape block that lay wholly before the first
  damaged byte did not read back from BOT;
* ``ok`` otherwise (a refusal with one clear line is ``ok``).

``bench/fuzz.py`` calls :func:`run` for long runs; ``test_cartridge_fuzz.py``
runs a short seeded one; ``python tests/tapelib/cartridge_fuzz.py SEED COUNT``
prints :func:`summary` and every mutant that was not ``ok``.  Run with
``--drive DEVICE`` this module is the subprocess itself.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BARCODE = "FUZZ01"
CAPACITY = 16 * 1024 * 1024
TIMEOUT = 30.0
_HEADER = struct.Struct("<HHBB")
_TAPEMARK = 0x40
_ENDREC = 0x20
OUTCOMES = ("ok", "traceback", "hang", "destroyed")
KINDS = ("awstape-flip", "awstape-truncate", "awstape-zero", "awstape-length",
         "awstape-dup", "awstape-swap", "json-field", "state-field")


@dataclass(frozen=True)
class FuzzResult:
    """One mutant: its class, what happened, and how to reproduce it."""

    kind: str
    outcome: str
    detail: str


@dataclass(frozen=True)
class _Block:
    start: int
    end: int
    tapemark: bool
    digest: str


@dataclass(frozen=True)
class _Mutant:
    kind: str
    description: str
    first_damage: int  # first byte of the .awstape the mutation touched (its length: none)
    awstape: bytes
    sidecar: bytes
    state: bytes


# -- the base cartridge ---------------------------------------------------------
def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("TAPE", None)
    return env


def _build_base(workdir: Path, rng: random.Random) -> Path:
    """A shelf whose drive holds a cartridge with three pydump images (``-b
    10``, ``-b 64``, ``-b 10``), rewound to file 1 so the head starts mid-tape."""
    base = workdir / "base"
    if (base / "done").exists():
        return base
    shutil.rmtree(base, ignore_errors=True)
    tree = workdir / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "sub").mkdir(parents=True)
    for i in range(6):
        (tree / ("sub" if i % 2 else "") / f"file{i}").write_bytes(rng.randbytes(rng.randrange(1, 40_000)))
    (tree / "empty").write_bytes(b"")
    sys.path.insert(0, str(REPO))
    from tapelib import Shelf

    shelf = Shelf.create(base / "shelf", drives=1, slots=2)
    shelf.new_cartridge(BARCODE, capacity=CAPACITY)
    shelf.load(BARCODE)
    nst0 = str(shelf.device_path(0, rewind=False))
    for blocking in ("10", "64", "10"):
        subprocess.run([_tool("pydump"), "-0", "-b", blocking, "-f", nst0, str(tree)], env=_env(),
                       check=True, capture_output=True, timeout=120)
    subprocess.run([_tool("pymt"), "-f", nst0, "asf", "1"], env=_env(), check=True,
                   capture_output=True, timeout=60)
    (base / "done").write_text("")
    return base


def _blocks(data: bytes) -> list[_Block]:
    """The blocks of a well-formed AWSTAPE file (the base cartridge)."""
    blocks: list[_Block] = []
    offset = start = 0
    pieces: list[bytes] = []
    while offset + _HEADER.size <= len(data):
        length, _prev, flags, _ = _HEADER.unpack_from(data, offset)
        pieces.append(data[offset + _HEADER.size:offset + _HEADER.size + length])
        offset += _HEADER.size + length
        if flags & (_TAPEMARK | _ENDREC):
            digest = "FM" if flags & _TAPEMARK else hashlib.sha1(b"".join(pieces)).hexdigest()[:16]
            blocks.append(_Block(start, offset, bool(flags & _TAPEMARK), digest))
            start, pieces = offset, []
    return blocks


def _headers(data: bytes) -> list[int]:
    offsets, offset = [], 0
    while offset + _HEADER.size <= len(data):
        offsets.append(offset)
        offset += _HEADER.size + _HEADER.unpack_from(data, offset)[0]
    return offsets


# -- mutations --------------------------------------------------------------------
_WRONG = [None, -1, "x", [], {}, True, 1.5, 2**70, 0]


def _mutate(kind: str, rng: random.Random, awstape: bytes, sidecar: bytes, state: bytes,
            blocks: list[_Block]) -> _Mutant:
    data = bytearray(awstape)
    size = len(data)
    headers = _headers(awstape)
    if kind == "awstape-flip":
        offsets = sorted({(rng.choice(headers) + rng.randrange(6)) if rng.random() < 0.5
                          else rng.randrange(size) for _ in range(rng.randint(1, 3))})
        for at in offsets:
            data[at] ^= 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randrange(1, 256)
        return _Mutant(kind, f"flip bytes {offsets}", offsets[0], bytes(data), sidecar, state)
    if kind == "awstape-truncate":
        at = rng.choice(headers) + rng.choice([0, 1, 3, 5, 6, 7, 100]) if rng.random() < 0.6 else rng.randrange(size)
        at = min(at, size - 1)
        return _Mutant(kind, f"truncate at {at}", at, bytes(data[:at]), sidecar, state)
    if kind == "awstape-zero":
        at = rng.randrange(size)
        length = min(rng.choice([1, 6, 100, 4096, 70_000]), size - at)
        data[at:at + length] = bytes(length)
        return _Mutant(kind, f"zero {length} bytes at {at}", at, bytes(data), sidecar, state)
    if kind == "awstape-length":
        at = rng.choice(headers)
        field = rng.choice([0, 2])
        old = struct.unpack_from("<H", data, at + field)[0]
        new = rng.choice([0, 1, 0xFFFF, old + 6, max(0, old - 6), old ^ 0x100, rng.randrange(0x10000)])
        struct.pack_into("<H", data, at + field, new & 0xFFFF)
        what = "length" if field == 0 else "previous length"
        return _Mutant(kind, f"header at {at}: {what} {old} -> {new & 0xFFFF}", at, bytes(data), sidecar, state)
    if kind == "awstape-dup":
        block = rng.choice(blocks)
        data[block.end:block.end] = awstape[block.start:block.end]
        return _Mutant(kind, f"block at {block.start} duplicated", block.end, bytes(data), sidecar, state)
    if kind == "awstape-swap":
        i = rng.randrange(len(blocks) - 1)
        a, b = blocks[i], blocks[i + 1]
        data[a.start:b.end] = awstape[b.start:b.end] + awstape[a.start:a.end]
        return _Mutant(kind, f"blocks at {a.start} and {b.start} swapped", a.start, bytes(data), sidecar, state)
    if kind == "json-field":
        meta = json.loads(sidecar)
        choice = rng.random()
        if choice < 0.1:
            cut = rng.randrange(len(sidecar))
            return _Mutant(kind, f"sidecar cut at {cut}", size, awstape, sidecar[:cut], state)
        if choice < 0.15:
            return _Mutant(kind, "sidecar is a list", size, awstape, b"[]", state)
        key = rng.choice(sorted(meta))
        if choice < 0.3:
            del meta[key]
            description = f"sidecar without {key}"
        else:
            value = meta[key]
            plausible = [value + d for d in (-7, -6, -1, 1, 6)] if isinstance(value, int) and not isinstance(value, bool) else []
            if isinstance(value, bool):
                plausible = [not value]
            new = rng.choice(plausible + _WRONG)
            meta[key] = new
            description = f"sidecar {key}: {value!r} -> {new!r}"
        return _Mutant(kind, description, size, awstape, json.dumps(meta).encode(), state)
    if kind == "state-field":
        st = json.loads(state)
        drive = st["drives"][0]
        position = drive["position"]
        choice = rng.random()
        if choice < 0.08:
            cut = rng.randrange(len(state))
            return _Mutant(kind, f"state cut at {cut}", size, awstape, sidecar, state[:cut])
        if choice < 0.2:
            target, key = rng.choice([(drive, "position"), (drive, "barcode"), (drive, "source_slot"),
                                      (st, "slots"), (st, "drives")])
            target[key] = rng.choice(_WRONG + ["NOSUCH", BARCODE])
            description = f"state {key} -> {target[key]!r}"
        elif choice < 0.3:
            key = rng.choice(sorted(position))
            del position[key]
            description = f"state position without {key}"
        else:
            key = rng.choice(sorted(position))
            value = position[key]
            candidates = list(_WRONG)
            if key == "offset":
                candidates += [b.start for b in rng.sample(blocks, 3)] + [b.start + 3 for b in rng.sample(blocks, 2)]
            elif isinstance(value, int) and not isinstance(value, bool):
                candidates += [value + 1, value - 1, 7]
            else:
                candidates += [not value]
            new = rng.choice(candidates)
            position[key] = new
            description = f"state position {key}: {value!r} -> {new!r}"
        return _Mutant(kind, description, size, awstape, sidecar, json.dumps(st).encode())
    raise ValueError(f"unknown mutant class {kind}")


# -- running and judging ------------------------------------------------------------
def _check(mutant: _Mutant, index: int, base: Path, workdir: Path, blocks: list[_Block]) -> FuzzResult:
    where = workdir / f"mutant{index}"
    shutil.rmtree(where, ignore_errors=True)
    shutil.copytree(base / "shelf", where)
    try:
        return _judge(mutant, where, blocks)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _judge(mutant: _Mutant, where: Path, blocks: list[_Block]) -> FuzzResult:
    cart = where / "cartridges" / f"{BARCODE}.awstape"
    cart.write_bytes(mutant.awstape)
    cart.with_suffix(".json").write_bytes(mutant.sidecar)
    (where / "state.json").write_bytes(mutant.state)
    detail = mutant.description
    try:
        proc = subprocess.run([sys.executable, __file__, "--drive", str(where / "nst0")], env=_env(),
                              capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return FuzzResult(mutant.kind, "hang", f"{detail}: no end after {TIMEOUT:.0f} s")
    if "Traceback (most recent call last)" in proc.stderr:
        tail = proc.stderr.strip().splitlines()[-1]
        return FuzzResult(mutant.kind, "traceback", f"{detail}: {tail}")
    after = cart.read_bytes() if cart.exists() else b""
    if not after.startswith(mutant.awstape):
        changed = next((i for i, (x, y) in enumerate(zip(after, mutant.awstape)) if x != y),
                       min(len(after), len(mutant.awstape)))
        return FuzzResult(mutant.kind, "destroyed",
                          f"{detail}: the cartridge changed from byte {changed} (damage at {mutant.first_damage})")
    intact = [b.digest for b in blocks if b.end <= mutant.first_damage]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    whole = [line for line in lines if line.get("step") == "read-all"]
    if whole and whole[0]["blocks"][:len(intact)] != intact:
        return FuzzResult(mutant.kind, "destroyed",
                          f"{detail}: {len(intact)} intact blocks before the damage, "
                          f"read back {len(whole[0]['blocks'])} not matching them")
    refusals = "; ".join(line for line in proc.stderr.splitlines() if line)[:300]
    return FuzzResult(mutant.kind, "ok", f"{detail}: {refusals or 'no complaint'}")


def run(seed: int, count: int, workdir: Path) -> list[FuzzResult]:
    """Make ``count`` mutants from ``seed`` (the same seed, the same mutants)
    under ``workdir`` and judge the tools on each."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    base = _build_base(workdir, random.Random(1))
    cart = base / "shelf" / "cartridges" / f"{BARCODE}.awstape"
    awstape = cart.read_bytes()
    sidecar = cart.with_suffix(".json").read_bytes()
    state = (base / "shelf" / "state.json").read_bytes()
    blocks = _blocks(awstape)
    mutants = [_mutate(KINDS[i % len(KINDS)], rng, awstape, sidecar, state, blocks) for i in range(count)]
    workers = max(1, min(4, (os.cpu_count() or 1)))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(_check, m, i, base, workdir, blocks) for i, m in enumerate(mutants)]
        return [f.result() for f in futures]


def summary(results: list[FuzzResult]) -> str:
    """A table: one row per mutant class, a column per outcome."""
    rows = [f"{'class':<18}" + "".join(f"{o:>11}" for o in OUTCOMES)]
    for kind in sorted({r.kind for r in results}):
        counts = [sum(1 for r in results if r.kind == kind and r.outcome == o) for o in OUTCOMES]
        rows.append(f"{kind:<18}" + "".join(f"{c:>11}" for c in counts))
    counts = [sum(1 for r in results if r.outcome == o) for o in OUTCOMES]
    rows.append(f"{'all':<18}" + "".join(f"{c:>11}" for c in counts))
    return "\n".join(rows)


# -- the subprocess -------------------------------------------------------------------
def _drive_main(device: str) -> None:
    """What runs over a mutant: each step as a separate tool would run it."""
    sys.path.insert(0, str(REPO))
    from tapelib import TapeError, open_device
    from snapdump.exits import run as run_tool
    from tapelib.cli.pymt import pymt

    def read(step: str, rewind: bool, most: int) -> None:
        got: list[str] = []
        try:
            with open_device(device) as tape:
                if rewind:
                    tape.rewind()
                for _ in range(most):
                    data = tape.read(1 << 20)
                    got.append(hashlib.sha1(data).hexdigest()[:16] if data else "FM")
        except TapeError as exc:
            print(f"{step}: {exc.message}", file=sys.stderr)
            if not got and rewind:
                return
        print(json.dumps({"step": step, "blocks": got}), flush=True)

    def append() -> None:
        with open_device(device, writable=True) as tape:
            tape.write(b"appended by the fuzzer " * 40)

    run_tool("pymt", lambda: pymt(["-f", device, "status"]))
    run_tool("read", lambda: read("read-here", False, 3))
    run_tool("pymt", lambda: pymt(["-f", device, "eod"]))
    run_tool("append", append)
    run_tool("pymt", lambda: pymt(["-f", device, "status"]))
    run_tool("read", lambda: read("read-all", True, 10_000))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--drive":
        _drive_main(sys.argv[2])
    else:
        import tempfile

        seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
        n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
        with tempfile.TemporaryDirectory() as tmp:
            found = run(seed, n, Path(tmp))
        print(summary(found))
        for r in found:
            if r.outcome != "ok":
                print(f"{r.kind} {r.outcome}: {r.detail}")
