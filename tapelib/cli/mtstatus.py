"""``mt status`` as mt-st prints it, from a :class:`~tapelib.drive.TapeStatus`.

The lines are mt-st's, byte for byte (mt.c ``do_status``), so scripts written
against ``mt status`` read ``pymt status`` unchanged.  Whatever pymt adds comes
after them, in :mod:`tapelib.cli.pymt`.
"""

from __future__ import annotations

from ..drive import TapeStatus
from ..mtio import GMT_NAMES, MT_ISSCSI1, MT_ISSCSI2

#: SCSI density codes and the names mt-st gives them.  Codes missing here
#: print as "no translation", as mt-st does for codes missing from its table.
DENSITY_NAMES: dict[int, str] = {
    0x00: "default",
    0x01: "NRZI (800 bpi)",
    0x02: "PE (1600 bpi)",
    0x03: "GCR (6250 bpi)",
    0x13: "DDS (61000 bpi)",
    0x24: "DDS-2",
    0x25: "DDS-3",
    0x26: "DDS-4 or QIC-4GB",
    0x40: "DLT1 40 GB, or Ultrium",
    0x42: "LTO-2",
    0x44: "LTO-3",
    0x46: "LTO-4",
    0x47: "DDS-5 or TR-5",
    0x58: "LTO-5",
    0x5A: "LTO-6",
    0x5C: "LTO-7",
    0x5D: "LTO-7-M8",
    0x5E: "LTO-8",
    0x60: "LTO-9",
}


def status_bit_names(gstat: int) -> str:
    """The GMT_* names set in ``gstat``, each after a space, in mt-st's order."""
    return "".join(f" {name}" for bit, name in GMT_NAMES if gstat & bit)


def format_status(status: TapeStatus) -> list[str]:
    """The lines of ``mt status`` for ``status`` (without newlines)."""
    gstat = status.gstat
    lines: list[str] = []
    if status.drive_type in (MT_ISSCSI1, MT_ISSCSI2):
        level = 1 if status.drive_type == MT_ISSCSI1 else 2
        lines.append(f"SCSI {level} tape drive:")
        if level == 2:
            lines.append(f"File number={status.file_number}, block number={status.block_number}, "
                         f"partition={status.residual & 0xFF}.")
        else:
            lines.append(f"File number={status.file_number}, block number={status.block_number}.")
        density = status.density & 0xFF
        name = DENSITY_NAMES.get(density, "no translation")
        lines.append(f"Tape block size {status.block_size & 0xFFFFFF} bytes. "
                     f"Density code 0x{density:x} ({name}).")
        lines.append("Soft error count since last status=0")
    else:
        # mt_dsreg packs the block size (low 24 bits) and the density (high 8).
        dsreg = (status.block_size & 0xFFFFFF) | ((status.density & 0xFF) << 24)
        lines.append(f"Unknown tape drive type (type code {status.drive_type})")
        lines.append(f"File number={status.file_number}, block number={status.block_number}.")
        lines.append(f"mt_resid: {status.residual}, mt_erreg: 0x0")
        lines.append(f"mt_dsreg: 0x{dsreg:x}, mt_gstat: 0x{gstat:x}")
    lines.append(f"General status bits on ({gstat:x}):")
    lines.append(status_bit_names(gstat))
    return lines
