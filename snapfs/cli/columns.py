"""The layout of what ``snapfs`` prints: listings in columns (``qtree list``,
``lun list``, ``df``, ...), whose heading and rows are formatted with the
same widths, given once; and the ``name: value`` lines of the ``show``s."""

from __future__ import annotations

from typing import Any, Iterable, Sequence


class Columns:
    """Columns given as (title, format spec) pairs, e.g. ``("ID", ">5")``;
    the last one usually has no width (``""``).  Columns are one space apart."""

    def __init__(self, *columns: tuple[str, str]) -> None:
        self.titles = [title for title, _ in columns]
        self.specs = [spec for _, spec in columns]

    def line(self, values: Sequence[Any]) -> str:
        """One row (or the heading) as text."""
        return " ".join(format(value, spec) for value, spec in zip(values, self.specs, strict=True))

    def print(self, rows: Iterable[Sequence[Any]]) -> None:
        """Print the heading, then one line a row."""
        print(self.line(self.titles))
        for row in rows:
            print(self.line(row))


def print_fields(fields: Iterable[tuple[str, Any]]) -> None:
    """One ``name:`` line a field, the values lined up (``qtree show``, ...)."""
    for name, value in fields:
        print(f"{name + ':':<16}{value}")
