"""Where a drive's head is, and what Linux st remembers about how it got there.

A :class:`Position` is the whole state a :class:`~tapelib.loopback.LoopbackDrive`
carries from one open to the next (a shelf keeps it in its drive state file):
the exact place on the cartridge and st's counters and states
(:class:`StEof`, :class:`StRw`), which the drive's replies derive from.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

#: The longest record: the 24-bit transfer length of SCSI READ(6)/WRITE(6),
#: what READ BLOCK LIMITS reports on most drives.  st refuses longer reads and
#: writes in variable-block mode with EINVAL.
MAX_BLOCK_SIZE = 0xFFFFFF


class StEof(enum.IntEnum):
    """st's ``eof`` state (``ST_NOEOF`` ... ``ST_EOD``), in st's order: st
    compares these values, and so does the loopback drive."""

    NOEOF = 0
    FM_HIT = 1     # read-ahead crossed a filemark (fixed mode in st; never here)
    FM = 2         # just past a filemark that was read, spaced over or written at close
    EOM_OK = 3     # a write entered early warning and succeeded (GMT_EOT)
    EOM_ERROR = 4  # buffered data was lost at EOM (never here: no write buffering)
    EOD_1 = 5      # the write after EOM_OK was refused with ENOSPC (GMT_EOD)
    EOD_2 = 6
    EOD = 7        # at end of data: the next read is EIO


class StRw(enum.IntEnum):
    """st's ``rw`` state: what the last data transfer was."""

    IDLE = 0
    READING = 1
    WRITING = 2


@dataclass(frozen=True)
class Position:
    """Where the head is, and what st remembers about how it got there.

    ``offset`` (byte in the cartridge file) and ``lba`` (records and
    filemarks before the head: what MTIOCPOS reports) are exact.
    ``file_number`` and ``block_number`` are st's counters, -1 when st would
    not know them.  ``eof`` and ``rw`` are st's states of the same names.
    ``fenced``: the head's place is not to be trusted for writing (a
    positioning or read met damage, or the remembered place was not a block
    boundary); writes are refused until a rewind, a load, a successful
    ``eod`` or an erase.
    """

    offset: int = 0
    lba: int = 0
    file_number: int = 0
    block_number: int = 0
    eof: StEof = StEof.NOEOF
    rw: StRw = StRw.IDLE
    block_size: int = 0
    online: bool = True
    fenced: bool = False

    def to_dict(self) -> dict:
        data = asdict(self)
        data["eof"] = int(self.eof)
        data["rw"] = int(self.rw)
        return data

    @classmethod
    def from_dict(cls, data: object) -> "Position":
        """The position a drive state file holds; ``ValueError`` naming the
        field when it is not one (missing counters, wrong types, out of range)."""
        if not isinstance(data, dict):
            raise ValueError(f"position is {data!r}, not a mapping")
        for key in ("offset", "lba", "file_number", "block_number"):
            if key not in data:
                raise ValueError(f"position has no {key}")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        eof = fields.get("eof", 0)
        if isinstance(eof, bool):  # shelves written before the eof state existed
            fields["eof"] = eof = int(StEof.FM if eof else StEof.NOEOF)
        for key, least in _POSITION_INTS.items():
            value = fields.get(key, least)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"position {key} is {value!r}, not an integer from {least}")
        for key in ("online", "fenced"):
            if not isinstance(fields.get(key, False), bool):
                raise ValueError(f"position {key} is {fields[key]!r}, not true/false")
        if fields.get("block_size", 0) > MAX_BLOCK_SIZE:
            raise ValueError(f"position block_size {fields['block_size']} is more than {MAX_BLOCK_SIZE}")
        for key, states in (("eof", StEof), ("rw", StRw)):
            value = fields.get(key, 0)
            try:
                fields[key] = states(value)
            except ValueError:
                raise ValueError(f"position {key} is {value!r}, not a known state") from None
        return cls(**fields)


#: The integer fields of a :class:`Position` and their least values.
_POSITION_INTS = {"offset": 0, "lba": 0, "file_number": -(2**31), "block_number": -(2**31),
                  "eof": 0, "rw": 0, "block_size": 0}
