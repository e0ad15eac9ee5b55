"""What the numbers and names given to a volume may be: one rule each, checked where they come in
(the ``snapfs`` command, the control channel, the Volume's calls) before anything changes.

Numbers.  Every count, size, offset and length a volume keeps is an SQLite
INTEGER, a signed 64-bit number: a larger one cannot be stored, so it is
refused (:func:`check_int`, EINVAL naming the figure) before a transaction
starts, never half-way through one.  A volume's size is bounded the same way
(its data file's offsets are 64-bit too).

Names a person reads in listings and types on command lines (a volume's, a
snapshot's, a snapshot holder's, a restriction or lock owner's, a qtree's)
are one line of visible text (:func:`check_label`): not empty, valid UTF-8,
no control character (newline, tab, carriage return, NUL, DEL, ...) and no
blank at either end; each kind adds its own rules (a snapshot name has no
``/``, a qtree name no comma or space).
"""

from __future__ import annotations

import errno
import unicodedata

from .errors import err

#: The largest number SQLite stores (and the largest file offset): 2**63 - 1.
INT_MAX = (1 << 63) - 1
#: The most bytes of a name a listing shows whole (as a file name's NAME_MAX).
LABEL_MAX = 255
#: Unicode categories refused in a name: control characters, unpaired surrogates
#: (bytes that were not UTF-8), and the line and paragraph separators.
_REFUSED = frozenset({"Cc", "Cs", "Zl", "Zp"})


def check_int(value: object, what: str, low: int = 0, high: int = INT_MAX) -> int:
    """``value`` when it is a whole number from ``low`` to ``high``; EINVAL naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise err(errno.EINVAL, f"{what} {value!r} is not a whole number")
    if not low <= value <= high:
        raise err(errno.EINVAL, f"{what} {value} is out of range ({low} to {high})")
    return value


def check_label(text: object, what: str, most: int | None = LABEL_MAX) -> str:
    """``text`` when it is one line of visible text of at most ``most`` bytes (UTF-8; None: no
    limit here); EINVAL naming ``what`` (``snapshot name``, ``volume name``) and the rule it breaks."""
    if not isinstance(text, str) or not text:
        raise err(errno.EINVAL, f"{what} may not be empty")
    shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "..."
    bad = next((c for c in text if unicodedata.category(c) in _REFUSED), None)
    if bad is not None:
        if unicodedata.category(bad) == "Cs":
            raise err(errno.EINVAL, f"{what} {shown} is not valid UTF-8")
        raise err(errno.EINVAL, f"{what} {shown} may not contain {bad!r}")
    if text != text.strip():
        raise err(errno.EINVAL, f"{what} {shown} may not start or end with a blank")
    if most is not None and len(text.encode()) > most:
        raise err(errno.EINVAL, f"{what} {shown} is longer than {most} bytes")
    return text
