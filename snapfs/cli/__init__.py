"""The ``snapfs`` command: :mod:`.main` (volumes, snapshots, fsck, streams),
:mod:`.filer` and :mod:`.filer_luns` (the filer's objects).  Every subcommand
ends through :func:`snapdump.exits.run`: a failure is one line, exit 1; bad
usage (:class:`UsageError`) exit 2."""

from snapdump.exits import CommandFailed

EXIT_USAGE = 2


class UsageError(CommandFailed):
    """Bad usage of a subcommand: one line, exit 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)
