"""What a restore says, and the error that stops one.

The engine prints nothing itself: it hands each line to the callbacks its
caller gives (the CLI prints them, as restore does; the NDMP engine keeps
them), as :class:`~dumptool.dump.Dump` does with ``say``/``warn``.
:class:`Report` counts the errors and warnings on the way, so that a
caller can tell a restore that went wrong from one that did not.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import DumpError


class RestoreError(DumpError):
    """A restore cannot go on (bad image start, wrong volume, broken chain)."""


def _silent(_line: str) -> None:
    pass


class Report:
    """The callbacks of one restore and what went through them.

    ``say`` gets the lines for standard output (listings, headers, ``-v``),
    ``warn`` the messages for standard error that the program's name
    prefixes (warnings, errors, notes), ``tell`` the lines for standard
    error said as they are (restore's own unprefixed lines: ``-C``'s
    differences, ``-t``'s names not on the tape).  ``verbose`` is asked at
    each ``-v`` line (the interactive ``verbose`` toggles it).
    """

    def __init__(self, say: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None,
                 tell: Callable[[str], None] | None = None, *,
                 verbose: Callable[[], bool] = lambda: False) -> None:
        self.say = say or _silent
        self.tell = tell or _silent
        self.note = warn or _silent
        self.is_verbose = verbose
        #: errors said (:meth:`error`), and the wanted names the image did not bring among them
        self.error_count = 0
        self.not_found: list[str] = []
        self.warnings = 0

    def warn(self, message: str) -> None:
        """A warning: the restore goes on and its outcome stays good."""
        self.warnings += 1
        self.note(message)

    def error(self, message: str) -> None:
        """An error: the restore goes on, and exits 1 at its end."""
        self.error_count += 1
        self.note(message)

    def missing(self, name: str) -> None:
        """An error for a wanted name the image does not bring (restore's "not found on tape")."""
        self.not_found.append(name)
        self.error(f"{name}: not found on the image")

    def verbose(self, line: str) -> None:
        """A ``-v`` line (said only under ``-v``)."""
        if self.is_verbose():
            self.say(line)
