"""What the numbers and names given to a volume may be: one rule each, checked where they come in
(the ``snapfs`` command, the control channel, the Volume's calls) before anything changes.

Numbers.  Every count, size, offset and length a volume keeps is an SQLite
INTEGER, a signed 64-bit number: a larger one cannot be stored, so it is
refused (:func:`check_int`, EINVAL naming the figure) before a transaction
starts, never half-way through one.  A volume's size is bounded the same way
(its data file's offsets are 64-bit too).
"""

from __future__ import annotations

import errno

from .errors import err

#: The largest number SQLite stores (and the largest file offset): 2**63 - 1.
INT_MAX = (1 << 63) - 1


def check_int(value: object, what: str, low: int = 0, high: int = INT_MAX) -> int:
    """``value`` when it is a whole number from ``low`` to ``high``; EINVAL naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise err(errno.EINVAL, f"{what} {value!r} is not a whole number")
    if not low <= value <= high:
        raise err(errno.EINVAL, f"{what} {value} is out of range ({low} to {high})")
    return value

