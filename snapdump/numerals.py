"""Whole numbers as the project's command lines, files and protocols write them.

``str.isdigit()`` is true of "²" and of other Unicode digits that ``int()``
refuses (a traceback where a one-line error was meant), and ``int()`` takes
some that no dump, rmt or NDMP peer writes.  :func:`is_decimal` is the one
test every package uses before ``int()``: ASCII digits, at least one.
"""

from __future__ import annotations


def is_decimal(text: str) -> bool:
    """Whether *text* is one or more ASCII digits ``0``-``9`` (and nothing else)."""
    return text.isascii() and text.isdigit()
