"""A loopback drive against a small model of a tape under Linux st.

The model is a list of records and filemarks, the head's index in it, and
st's counters and states, with rules written from st's behaviour (st.c,
st(4)), not from tapelib.  Hypothesis drives both with random operations;
after every step the replies (data or errno), positions and status bits
must agree.  Some runs use a cartridge small enough to reach early warning
and the hard end of the medium.
"""

from __future__ import annotations

import errno
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tapelib import MtOp, Shelf, TapeError, open_device

HEADER = 6         # an AWSTAPE header: a tapemark, or what precedes each segment
SEGMENT = 0xFFFF   # the longest AWSTAPE segment

# st's eof states, in st's order.
NOEOF, FM_HIT, FM, EOM_OK, EOM_ERROR, EOD_1, EOD_2, EOD = range(8)
IDLE, READING, WRITING = "idle", "reading", "writing"


def tape_bytes(length: int) -> int:
    """Bytes a record takes on the cartridge (the physical length of tape)."""
    return length + HEADER * max(1, -(-length // SEGMENT))


def record_data(length: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(length)


class Expected(Exception):
    """The model's verdict that an operation fails with ``errno``."""

    def __init__(self, code: int) -> None:
        super().__init__(errno.errorcode[code])
        self.errno = code


@dataclass
class TapeModel:
    """A tape under st: items are ("R", length, seed) or ("FM",)."""

    capacity: int
    early_warning: int
    items: list[tuple] = field(default_factory=list)
    pos: int = 0
    file: int = 0
    blk: int = 0
    eof: int = NOEOF
    rw: str = IDLE
    online: bool = True
    writable: bool = True
    rewinding: bool = False

    # -- geometry --------------------------------------------------------
    def offset(self, index: int | None = None) -> int:
        upto = self.pos if index is None else index
        return sum(HEADER if it[0] == "FM" else tape_bytes(it[1]) for it in self.items[:upto])

    def ready(self) -> None:
        if not self.online:
            raise Expected(errno.ENOMEDIUM)

    # -- data ------------------------------------------------------------
    def write(self, length: int, seed: int) -> int:
        self.ready()
        if length == 0:
            return 0                      # st: a zero-byte write does nothing
        if not self.writable:
            raise Expected(errno.EACCES)
        if self.eof == EOM_OK:            # the write after the one that entered EW
            self.eof = EOD_1
            if self.rw == READING:
                self.rw = WRITING
            raise Expected(errno.ENOSPC)
        self.rw = WRITING
        if self.offset() + tape_bytes(length) > self.capacity:
            self.eof = EOM_OK             # VOLUME OVERFLOW: nothing written
            raise Expected(errno.ENOSPC)
        del self.items[self.pos:]
        self.items.append(("R", length, seed))
        self.pos += 1
        if self.blk >= 0:
            self.blk += 1
        if self.offset() >= self.capacity - self.early_warning or self.eof == EOD_1:
            self.eof = EOM_OK
        elif self.eof != EOM_OK:
            self.eof = NOEOF
        return length

    def _pass_item(self) -> tuple:
        """Move past the item at the head; past a filemark, the head is at
        block 0 of the next file."""
        item = self.items[self.pos]
        self.pos += 1
        if item[0] == "FM":
            if self.file >= 0:
                self.file += 1
            self.blk, self.eof = 0, FM
        return item

    def read(self, size: int) -> bytes:
        self.ready()
        self.rw = READING
        if self.eof >= EOD_1:
            if self.eof < EOD:
                self.eof += 1
                return b""
            raise Expected(errno.EIO)
        if self.pos == len(self.items):   # BLANK CHECK
            self.blk = -1
            if self.eof == FM:
                self.eof = EOD
                return b""
            raise Expected(errno.EIO)
        item = self._pass_item()
        if item[0] == "FM":
            return b""
        if self.blk >= 0:
            self.blk += 1
        if item[1] > size:
            raise Expected(errno.ENOMEM)  # the record is passed over
        if self.eof == FM:
            self.eof = NOEOF
        return record_data(item[1], item[2])

    def weof(self, count: int) -> None:
        """st_int_ioctl(MTWEOF): filemarks fit up to the hard capacity."""
        if not self.writable:
            raise Expected(errno.EACCES)
        done = min(count, max(0, (self.capacity - self.offset()) // HEADER))
        if done:
            del self.items[self.pos:]
            self.items.extend([("FM",)] * done)
            self.pos += done
            if self.file >= 0:
                self.file += done
        self.blk = 0
        if done < count:
            self.eof = NOEOF if done else EOM_OK
            raise Expected(errno.EIO)
        self.eof = NOEOF

    # -- ioctls ------------------------------------------------------------
    def begin(self, op: str, count: int = 1) -> int:
        """st_ioctl's prologue: a filemark after writing for rew/offl/seek/bsf/bsfm."""
        self.ready()
        if self.rw == WRITING and op in ("rew", "offl", "seek", "bsf", "bsfm"):
            self.weof(1)
            if op in ("bsf", "bsfm"):
                count += 1
        self.rw = IDLE
        return count

    def op_weof(self, count: int) -> None:
        self.begin("weof")
        self.weof(count)

    def _forward_filemarks(self, count: int) -> None:
        crossed = 0
        while crossed < count and self.pos < len(self.items):
            if self.items[self.pos][0] == "FM":
                crossed += 1
            self.pos += 1
        if self.file >= 0:
            self.file += crossed
        if crossed < count:
            self.blk, self.eof = -1, EOD
            raise Expected(errno.EIO)
        self.blk, self.eof = 0, FM

    def _back_filemarks(self, count: int) -> None:
        crossed = 0
        while crossed < count and self.pos > 0:
            self.pos -= 1
            if self.items[self.pos][0] == "FM":
                crossed += 1
        if self.file >= 0:
            self.file -= crossed
        self.eof = NOEOF
        if crossed < count:
            self.blk = 0
            raise Expected(errno.EIO)
        self.blk = -1

    def fsf(self, count: int) -> None:
        self._forward_filemarks(self.begin("fsf", count))

    def bsf(self, count: int) -> None:
        self._back_filemarks(self.begin("bsf", count))

    def fsfm(self, count: int) -> None:
        self._forward_filemarks(self.begin("fsfm", count))
        self._back_filemarks(1)

    def bsfm(self, count: int) -> None:
        self._back_filemarks(self.begin("bsfm", count))
        self._forward_filemarks(1)

    def fsr(self, count: int) -> None:
        self.begin("fsr")
        for crossed in range(count):
            if self.pos == len(self.items):
                self.blk = self.blk + crossed if self.blk >= 0 else -1
                self.eof = EOD
                raise Expected(errno.EIO)
            if self._pass_item()[0] == "FM":
                raise Expected(errno.EIO)
        if self.blk >= 0:
            self.blk += count
        self.eof = NOEOF

    def bsr(self, count: int) -> None:
        self.begin("bsr")
        old = self.blk
        self.eof = NOEOF
        for crossed in range(count):
            if self.pos == 0:
                self.blk = (old - count if old >= 0 else -1) + (count - crossed)
                raise Expected(errno.EIO)
            self.pos -= 1
            if self.items[self.pos][0] == "FM":
                self.file -= 1
                self.blk = -1
                raise Expected(errno.EIO)
        self.blk = old - count if old >= 0 else -1

    def rewind(self) -> None:
        self.begin("rew")
        self.pos, self.file, self.blk, self.eof = 0, 0, 0, NOEOF

    def eod(self) -> None:
        self.begin("eom")
        crossed = sum(1 for it in self.items[self.pos:] if it[0] == "FM")
        self.pos = len(self.items)
        if self.file >= 0:
            self.file += crossed
        self.blk, self.eof = -1, EOD

    def seek(self, block: int) -> None:
        self.begin("seek")
        self.pos = min(block, len(self.items))
        self.file = self.blk = 0 if block == 0 else -1
        self.eof = NOEOF
        if block > len(self.items):
            raise Expected(errno.EIO)

    def tell(self) -> int:
        if not self.online:
            raise Expected(errno.EIO)
        return self.pos

    def offline(self) -> None:
        self.begin("offl")
        self.online = False
        self.pos = 0

    def load(self) -> None:
        self.rw = IDLE
        self.online = True
        self.pos, self.file, self.blk, self.eof = 0, 0, 0, NOEOF

    # -- close and open ------------------------------------------------------
    def close(self) -> None:
        failed = False
        if self.online:
            if self.rw == WRITING:
                if self.offset() + HEADER <= self.capacity:
                    self.weof(1)
                    self.eof = FM
                else:
                    failed = True
            if self.rewinding:
                self.pos, self.file, self.blk, self.eof = 0, 0, 0, NOEOF
        self.rw = IDLE
        if failed:
            raise Expected(errno.EIO)

    def open(self, rewinding: bool, writable: bool) -> None:
        self.rewinding, self.writable, self.rw = rewinding, writable, IDLE
        if not self.online:
            self.file = self.blk = -1

    # -- status ----------------------------------------------------------------
    def status_bits(self) -> dict[str, object]:
        return {
            "file": self.file, "block": self.blk,
            "bot": self.blk == 0 and self.file == 0,
            "eof": self.blk == 0 and self.file != 0,
            "eot": self.eof in (EOM_OK, EOM_ERROR),
            "eod": self.eof in (EOD_1, EOD_2, EOD),
            "online": self.online, "door_open": not self.online,
        }


class _Agreed(Exception):
    """Both sides failed with the same errno (ends a run of reads)."""


RECORD_SIZES = st.one_of(
    st.sampled_from([0, 1, 65535, 65536, 65541, 131071, 140000]),
    st.integers(min_value=1, max_value=3000),
)
READ_SIZES = st.sampled_from([1, 200, 3000, 65535, 70000, 1 << 18])
COUNTS = st.integers(min_value=0, max_value=4)
# (capacity, early warning): a roomy cartridge, and small ones that fill up.
CARTRIDGES = st.sampled_from([(4 << 20, 200_000), (400_000, 100_000), (150_000, 20_000), (70_000, 4_000)])


class LoopbackMatchesSt(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.work = Path(tempfile.mkdtemp(prefix="tape-sm-"))
        self.drive = None
        self.model: TapeModel | None = None

    @initialize(cartridge=CARTRIDGES)
    def make_shelf(self, cartridge: tuple[int, int]) -> None:
        capacity, early_warning = cartridge
        self.shelf = Shelf.create(self.work / "shelf", drives=1, slots=1)
        self.shelf.new_cartridge("SM0001", capacity=capacity, early_warning=early_warning)
        self.shelf.load("SM0001")
        self.model = TapeModel(capacity, early_warning)
        self.model.open(rewinding=False, writable=True)
        self.drive = open_device(str(self.shelf.device_path(0, rewind=False)), writable=True)

    def teardown(self) -> None:
        try:
            if self.drive is not None:
                try:
                    self.drive.close()
                except TapeError:
                    pass
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def both(self, model_call, drive_call, raise_agreed_error: bool = False) -> object:
        """Run one operation on the model and on the drive; the outcomes must agree."""
        try:
            expected, expected_errno = model_call(), None
        except Expected as exc:
            expected, expected_errno = None, exc.errno
        try:
            got, got_errno = drive_call(), None
        except TapeError as exc:
            got, got_errno = None, exc.errno
        assert (got_errno and errno.errorcode[got_errno]) == (
            expected_errno and errno.errorcode[expected_errno]), (got, expected)
        assert got == expected
        if raise_agreed_error and got_errno:
            raise _Agreed(got_errno)
        return got

    # -- rules -------------------------------------------------------------------
    @rule(length=RECORD_SIZES, seed=st.integers(0, 2**32))
    def write(self, length: int, seed: int) -> None:
        self.both(lambda: self.model.write(length, seed),
                  lambda: self.drive.write(record_data(length, seed)))

    @rule(size=READ_SIZES)
    def read(self, size: int) -> None:
        self.both(lambda: self.model.read(size), lambda: self.drive.read(size))

    @rule(size=READ_SIZES)
    def read_until_an_error(self, size: int) -> None:
        """Reads in a row, as restore does, so the end-of-data replies come often."""
        for _ in range(12):
            try:
                self.both(lambda: self.model.read(size), lambda: self.drive.read(size), True)
            except _Agreed:
                return

    @rule(count=COUNTS)
    def weof(self, count: int) -> None:
        self.both(lambda: self.model.op_weof(count), lambda: self.drive.write_filemarks(count))

    @rule(op=st.sampled_from(["fsf", "bsf", "fsr", "bsr", "fsfm", "bsfm"]), count=COUNTS)
    def space_by_mtop(self, op: str, count: int) -> None:
        code = {"fsf": MtOp.MTFSF, "bsf": MtOp.MTBSF, "fsr": MtOp.MTFSR, "bsr": MtOp.MTBSR,
                "fsfm": MtOp.MTFSFM, "bsfm": MtOp.MTBSFM}[op]
        self.both(lambda: getattr(self.model, op)(count), lambda: self.drive.mtop(code, count))

    @rule(count=st.integers(min_value=-4, max_value=4))
    def space_files(self, count: int) -> None:
        model = self.model.fsf if count > 0 else self.model.bsf
        self.both(lambda: model(abs(count)) if count else None, lambda: self.drive.space_files(count))

    @rule(count=st.integers(min_value=-4, max_value=4))
    def space_records(self, count: int) -> None:
        model = self.model.fsr if count > 0 else self.model.bsr
        self.both(lambda: model(abs(count)) if count else None, lambda: self.drive.space_records(count))

    @rule()
    def rewind(self) -> None:
        self.both(self.model.rewind, self.drive.rewind)

    @rule()
    def eod(self) -> None:
        self.both(self.model.eod, self.drive.seek_eod)

    @rule(block=st.integers(min_value=0, max_value=12))
    def seek(self, block: int) -> None:
        self.both(lambda: self.model.seek(block), lambda: self.drive.seek(block))

    @rule()
    def offline(self) -> None:
        self.both(self.model.offline, lambda: self.drive.mtop(MtOp.MTOFFL, 1))

    @precondition(lambda self: self.model is not None and not self.model.online)
    @rule()
    def load(self) -> None:
        self.both(self.model.load, self.drive.load)

    @rule(rewinding=st.booleans(), writable=st.booleans())
    def reopen(self, rewinding: bool, writable: bool) -> None:
        self.both(self.model.close, self.drive.close)
        self.model.open(rewinding, writable)
        self.drive = open_device(str(self.shelf.device_path(0, rewind=rewinding)), writable=writable)

    # -- after every step ------------------------------------------------------------
    @invariant()
    def position_and_status_agree(self) -> None:
        if self.model is None:
            return
        s = self.drive.status()
        got = {"file": s.file_number, "block": s.block_number, "bot": s.bot, "eof": s.eof,
               "eot": s.eot, "eod": s.eod, "online": s.online, "door_open": s.door_open}
        assert got == self.model.status_bits()
        self.both(self.model.tell, self.drive.tell)


LoopbackMatchesSt.TestCase.settings = settings(
    max_examples=250, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_loopback_matches_st = LoopbackMatchesSt.TestCase
