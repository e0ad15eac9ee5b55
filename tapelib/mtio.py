"""Names and numbers from Linux ``<sys/mtio.h>``.

The operation codes travel over the rmt protocol and through MTIOCTOP; the
general status bits travel in ``struct mtget.mt_gstat``.  They are defined
once, here.
"""

from __future__ import annotations

import enum


class MtOp(enum.IntEnum):
    """``struct mtop.mt_op`` codes (Linux)."""

    MTRESET = 0
    MTFSF = 1
    MTBSF = 2
    MTFSR = 3
    MTBSR = 4
    MTWEOF = 5
    MTREW = 6
    MTOFFL = 7
    MTNOP = 8
    MTRETEN = 9
    MTBSFM = 10
    MTFSFM = 11
    MTEOM = 12
    MTERASE = 13
    MTRAS1 = 14
    MTRAS2 = 15
    MTRAS3 = 16
    MTSETBLK = 20
    MTSETDENSITY = 21
    MTSEEK = 22
    MTTELL = 23
    MTSETDRVBUFFER = 24
    MTFSS = 25
    MTBSS = 26
    MTWSM = 27
    MTLOCK = 28
    MTUNLOCK = 29
    MTLOAD = 30
    MTUNLOAD = 31
    MTCOMPRESSION = 32
    MTSETPART = 33
    MTMKPART = 34
    MTWEOFI = 35


# struct mtget.mt_gstat bits (GMT_* macros in <linux/mtio.h>).
GMT_EOF = 0x80000000
GMT_BOT = 0x40000000
GMT_EOT = 0x20000000
GMT_SM = 0x10000000
GMT_EOD = 0x08000000
GMT_WR_PROT = 0x04000000
GMT_ONLINE = 0x01000000
GMT_D_6250 = 0x00800000
GMT_D_1600 = 0x00400000
GMT_D_800 = 0x00200000
GMT_DR_OPEN = 0x00040000
GMT_IM_REP_EN = 0x00010000
GMT_CLN = 0x00008000

# mt_type for a generic SCSI-1 (or CCS) and SCSI-2 tape, as Linux st reports it.
MT_ISSCSI1 = 0x71
MT_ISSCSI2 = 0x72

# The order and names mt-st prints the status bits in.
GMT_NAMES: tuple[tuple[int, str], ...] = (
    (GMT_EOF, "EOF"),
    (GMT_BOT, "BOT"),
    (GMT_EOT, "EOT"),
    (GMT_SM, "SM"),
    (GMT_EOD, "EOD"),
    (GMT_WR_PROT, "WR_PROT"),
    (GMT_ONLINE, "ONLINE"),
    (GMT_D_6250, "D_6250"),
    (GMT_D_1600, "D_1600"),
    (GMT_D_800, "D_800"),
    (GMT_DR_OPEN, "DR_OPEN"),
    (GMT_IM_REP_EN, "IM_REP_EN"),
    (GMT_CLN, "CLN"),
)
