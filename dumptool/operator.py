"""Talking to the operator on the controlling terminal (dump's ``optr.c``).

pydump and pyrestore ask for the next volume on ``/dev/tty``, not on
standard input or output, which may carry the image.  :func:`open_terminal`
is ``None`` when the process has no controlling terminal, so a caller can
fail clearly instead of waiting for an answer nobody can give.
"""

from __future__ import annotations

import os


class Terminal:
    """The controlling terminal, opened for one conversation (a context manager)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._reader = os.fdopen(os.dup(fd), "r", encoding="utf-8", errors="replace")

    def write(self, text: str) -> None:
        os.write(self._fd, text.encode("utf-8", "replace"))

    def readline(self) -> str:
        """One line typed by the operator, ``""`` at end of input."""
        return self._reader.readline()

    def ask(self, question: str) -> str | None:
        """Print *question* and return the stripped answer (``None`` at end of input)."""
        self.write(question)
        line = self.readline()
        return line.strip() if line else None

    def close(self) -> None:
        self._reader.close()
        os.close(self._fd)

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_terminal() -> Terminal | None:
    """The controlling terminal, or ``None`` when there is none."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    return Terminal(fd)
