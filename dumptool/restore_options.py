"""The flags that change how a restore works (the CLI fills them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from typing import TYPE_CHECKING

from .format import QfaMap

if TYPE_CHECKING:
    from .offsetmap import HistoryLocator


@dataclass
class Options:
    """The flags that change how the engine works (the CLI fills them)."""

    verbose: bool = False
    dry_run: bool = False          # -N
    unlink: bool = False           # -u
    set_root_modes: bool = False   # -o (for -x: set owner/mode of ".")
    by_inode: bool = False         # -m
    qfa: QfaMap | HistoryLocator | None = None  # -Q (or the file history): seek to the files -x wants
    #: with qfa: the map that says where Pass V starts (None: -x reads on from its last file to the end)
    pass5_at: QfaMap | HistoryLocator | None = None
    renames: list[tuple[str, str]] = field(default_factory=list)  # --rename OLD=NEW: extracted OLD lands at NEW
    force: bool = False            # --force: no free-space check; stop at a full target
    file_history: bool = True      # -x: use the offset map pydump kept for the image (dumptool.offsetmap)
    dir_only: bool = False         # -h: a directory named is extracted itself, not its contents
    #: -i: directories on the extraction list without all they hold (each extracted by itself)
    dirs_alone: set[bytes] = field(default_factory=set)
    compare_limit: int = 0         # -L: -C stops at this many compare errors (0: never)
    input_blocks: int | None = None  # -b: only for -v's "Input block size is N" (records are found by themselves)
    volumes_not_tape: bool = False   # -V: only for -v's "Input is from a local multi-volume (no tape)"
    streams_as_files: bool = False  # --streams-as-files: a stream too large for an xattr as FILE:STREAM
