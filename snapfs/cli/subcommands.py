"""How a ``snapfs`` subcommand on one volume is declared: the parser with
its action (if it has several), the volume argument every such command
takes first, and the function that runs it."""

from __future__ import annotations

import argparse
from typing import Any, Callable, Sequence


def volume_subcommand(sub: Any, name: str, fn: Callable[[argparse.Namespace], int], what: str,
                      actions: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Add ``snapfs NAME [ACTION] VOL ...`` to ``sub`` (the subparsers), helped
    as "ACTION|ACTION... WHAT"; the caller adds the arguments after VOL to the
    parser returned."""
    parser = sub.add_parser(name, help=f"{'|'.join(actions)} {what}" if actions else what)
    if actions is not None:
        parser.add_argument("action", choices=list(actions), help="what to do")
    parser.add_argument("vol", help="mount point or volume folder")
    parser.set_defaults(fn=fn)
    return parser
