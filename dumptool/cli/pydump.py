"""``pydump``: dump a directory tree to a BSD dump image, with Linux dump's flags.

    pydump -0 -u -f /backup/home.0 /home
    pydump -1 -u -f SHELF/nst0 -b 64 /home
    pydump -0 -M -B 100000 -f /backup/home.vol /home     # home.vol001, 002, ...
    pydump -0 -z6 -f /backup/home.0.z /home              # zlib at level 6 (-j: bzip2)
    pydump -1 -m -u -f /backup/home.1 /home              # chmod/chown-only files: metadata only
    pydump 0uf /backup/home.0 /home                       # dump's old keyless syntax
    pydump -0 -S /home                                    # the size estimate in bytes, on stdout

Operator lines go to stderr as ``  DUMP: ...``; an error is one line and
exit status 1 (3 when interrupted).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import re
import sys
import time

from snapdump.exits import CommandFailed, leave_objects_at_exit, run
from snapdump.numerals import is_decimal
from snapdump.standard_streams import STDOUT, require

# The engine's modules make some 15,000 objects the collector tracks (classes, functions, their
# dicts and tuples) that live as long as the process: the cyclic collector, run at every 700 new
# ones, would walk them again and again as they come (15 of the 29 collections before a run's
# walk, some 3 ms).  It waits while they are made, and they are then frozen out of its sight
# (gc.freeze: once, when this module is first imported; what the process held before is frozen
# with them).
_collecting = gc.isenabled()
gc.disable()
try:
    from ..compression import DEFAULT_LEVEL, MAX_LEVEL as MAX_COMPRESS_LEVEL, MIN_LEVEL as MIN_COMPRESS_LEVEL
    from ..dump import Dump, DumpOptions
    from ..format.constants import COMPRESS_BZLIB, COMPRESS_ZLIB, MAX_DATE
    from ..dumpdates import DEFAULT_DUMPDATES, MAX_LEVEL, DumpDates, parse_record
    from ..errors import DumpError
    from ..contexts import ContextKeeper, ContextStore, details, listing, snapshot_names
    from ..filer import dump_source
    from ..sessions import session_slot
    from .syntax import (MAX_LIST, RefusedFlag, VersionAction, add_refused, check_refused, expand_key,
                         metavar_checker, read_list)
finally:
    gc.freeze()
    if _collecting:
        gc.enable()

PROG = "pydump"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 1, no usage dump
        raise CommandFailed(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, add_help=False, formatter_class=metavar_checker,
                description="Dump a directory tree to a BSD dump image (Linux dump's flags). The level is "
                            f"given as digits, -0 to -{MAX_LEVEL}: as in dump, every digit flag adds a digit "
                            "(-15 and -1 -5 are level 15).")
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("--version", action=VersionAction)
    p.add_argument("--level", dest="level", type=int, metavar="N", help=f"dump level 0 to {MAX_LEVEL} (as -N)")
    p.add_argument("-h", dest="honor_level", type=int, default=1, metavar="LEVEL",
                   help="honour the nodump flag (chattr +d) at dump levels from LEVEL up: such files, and "
                        "such directories with all under them, are left out (0 to 10, default 1)")
    p.add_argument("-b", dest="ntrec", type=int, default=10, metavar="N",
                   help="blocking factor: KiB per record, 4 to 256 (default 10)")
    p.add_argument("-f", dest="output", metavar="FILE",
                   help="output: a file, - for standard output, a tape device (SHELF/nst0, /dev/nst0) "
                        "or host:device; with -M the prefix of the volume files")
    p.add_argument("-u", dest="update", action="store_true", help="record this dump in the dumpdates file")
    p.add_argument("-D", dest="dumpdates", default=DEFAULT_DUMPDATES, metavar="FILE",
                   help=f"dumpdates file (default {DEFAULT_DUMPDATES})")
    p.add_argument("-T", dest="base_date", metavar="DATE",
                   help="base date for an incremental, instead of the dumpdates file "
                        "(ctime format, ISO 8601, or @seconds)")
    p.add_argument("--snapshot-date", dest="frozen_at", metavar="DATE",
                   help="(pydump's own) SOURCE is a read-only copy whose data froze at DATE (ctime format, "
                        "ISO 8601 or @seconds): that is the dump's date, in the image and in dumpdates. "
                        "A snapfs .snapshot/NAME/ tree needs no flag: its creation time is used")
    p.add_argument("--snapshot", dest="snapshot", metavar="NAME",
                   help="(pydump's own) SOURCE on a snapfs mount: dump its existing snapshot NAME (held for the "
                        "dump, not deleted) instead of a new snapshot_for_backup.N")
    p.add_argument("--contexts", dest="contexts", nargs="?", const="", metavar="ID",
                   help="(pydump's own) list the restartable dump contexts (as ONTAP's restartable-backup show); "
                        "with ID, all the fields of that one")
    p.add_argument("--delete-context", dest="delete_context", metavar="ID",
                   help="(pydump's own) delete restartable context ID and give its snapshot back")
    p.add_argument("--restart", dest="restart", metavar="ID",
                   help="(pydump's own) go on with the dump of restartable context ID as its next volume, "
                        "on -f (a new file, or a tape: the same cartridge after the interrupted tape file, "
                        "or another one)")
    p.add_argument("--no-file-history", dest="no_file_history", action="store_true",
                   help="(pydump's own) keep no file history (offset maps) for this dump: pyrestore -x "
                        "reads it whole, and interrupted it cannot be restarted")
    p.add_argument("-L", dest="label", default="none", metavar="LABEL", help="volume label (up to 15 bytes)")
    p.add_argument("-q", dest="never_ask", action="store_true",
                   help="abort instead of asking the operator anything (dump's -q); the output stays as it is")
    p.add_argument("--quiet", dest="quiet", action="store_true",
                   help="(pydump's own) print only errors and warnings")
    p.add_argument("-B", dest="volume_blocks", type=int, metavar="BLOCKS",
                   help="1 KiB blocks per volume; at the end of one, the next goes to the next -M file, the next "
                        "shelf cartridge, or where the operator says when asked (a new file, or the same name "
                        "once the full one is moved away)")
    p.add_argument("-a", dest="auto_size", action="store_true",
                   help="auto-size: write until the medium is full (the default; not with -B)")
    p.add_argument("-S", dest="size_estimate", action="store_true",
                   help="print the size estimate of the dump in bytes on standard output and exit")
    p.add_argument("-W", dest="report", action="store_const", const="W",
                   help="print the dumps recorded in the dumpdates file and exit")
    p.add_argument("-w", dest="report", action="store_const", const="w",
                   help="print the file systems that need dumping and exit")
    p.add_argument("-n", dest="notify", action="store_true",
                   help="notify the operators when the dump needs attention (printed with the DUMP: lines)")
    p.add_argument("-v", dest="verbose", action="store_true", help="verbose: a line for each inode dumped")
    p.add_argument("-F", dest="eot_script", metavar="SCRIPT",
                   help="run SCRIPT DEVICE VOLUME at the end of each volume: exit 0, the next volume is ready; "
                        "1, go on as without it; anything else aborts the dump")
    p.add_argument("-I", dest="read_errors", type=int, default=32, metavar="N",
                   help="files that may fail to be read (dumped as holes) before the dump is aborted; "
                        "0: no limit (default 32)")
    p.add_argument("--progress", dest="progress", type=float, default=300.0, metavar="SECONDS",
                   help="(pydump's own) seconds between progress lines (default 300, as dump's 5 minutes)")
    add_refused(p, _REFUSED)
    p.add_argument("-m", dest="metaonly", action="store_true",
                   help="metadata only for inodes changed but not modified since the base dump (ctime, not "
                        "mtime, newer): their attributes and xattrs without their data; nothing to do at a level 0 "
                        "without -T (no base date)")
    p.add_argument("-M", dest="multivolume", action="store_true",
                   help="multi-volume: -f names a prefix, volumes go to PREFIX001, PREFIX002, ...")
    p.add_argument("-A", dest="toc", metavar="FILE",
                   help="archive the table of contents to FILE (the header, maps and directories, as dump's -A): "
                        "restore -t -A FILE and restore -i -A FILE read it without the medium")
    p.add_argument("-Q", dest="qfa", metavar="FILE",
                   help="write the quick file access map to FILE: each file's tape position, "
                        "for restore -Q (Linux dump's format)")
    p.add_argument("-e", dest="exclude", action="append", default=[], metavar="INODES",
                   help="exclude these dump inode numbers (comma-separated)")
    p.add_argument("-E", dest="exclude_files", action="append", default=[], metavar="FILE",
                   help="exclude the dump inode numbers listed in FILE")
    p.add_argument("--no-prompt", dest="yes", action="store_true",
                   help="never prompt (as -q): where nothing can change the volume by itself, fail instead of "
                        "asking on the terminal for the next one")
    p.add_argument("--scratch", action="append", default=[], metavar="BARCODE[,BARCODE]",
                   help="shelf cartridges a full tape may be changed for although they hold data: "
                        "their data is overwritten (by default only blank cartridges are taken)")
    # -z[level] and -j[level] are taken out of argv first (_cluster_flags): their
    # level is attached to the flag, as with dump's getopt "z::".
    p.add_argument("-z", dest="_z", action="store_true",
                   help=f"compress each record with zlib; -zLEVEL (no space) sets the level, "
                        f"{MIN_COMPRESS_LEVEL} to {MAX_COMPRESS_LEVEL}, default {DEFAULT_LEVEL}")
    p.add_argument("-j", dest="_j", action="store_true", help="likewise with bzip2 (-jLEVEL)")
    p.add_argument("source", metavar="SOURCE", nargs="?", help="the directory to dump")
    p.formatter_class = argparse.HelpFormatter  # help at the terminal's width (see metavar_checker)
    return p


#: dump 0.4b47's flags pydump refuses, and why.
_REFUSED = [RefusedFlag(flag, f"{flag}: {why}", why) for flag, why in (
    ("-c", "not supported: cartridge tape length arithmetic; give the volume size with -B"),
    ("-d", "not supported: tape density arithmetic; give the volume size with -B"),
    ("-s", "not supported: tape length in feet; give the volume size with -B"),
    ("-k", "not supported: Kerberos rmt; pydump reaches remote drives over $RSH"),
)]

#: Flags that take a value (the rest of a cluster, or the next argument).
_VALUE_FLAGS = set("bfDTLBAQeEhFI")
#: The letters of dump's old keyless syntax that take the next argument (dump's obsolete(), and I).
_KEY_VALUES = "ABbdDeEfFhILQsT"
#: A key: dump 0.4b47's flag letters only (a first argument like ``src`` is not one).
_KEY = re.compile(r"[0-9AaBbcdDeEFfhIjkLMmnQqSsTuvWwyz]+")


def _keyless(argv: list[str]) -> list[str]:
    """dump's old syntax, ``pydump 0uf FILE SRC`` or ``pydump 0ubf 64 FILE
    SRC``: a first argument without ``-`` is a key of flag letters, and each
    letter that takes a value takes the next argument, in order."""
    if len(argv) < 2 or argv[0].startswith("-") or not _KEY.fullmatch(argv[0]):
        return argv
    return expand_key(argv, _KEY_VALUES, CommandFailed)
_METHODS = {"z": COMPRESS_ZLIB, "j": COMPRESS_BZLIB}


def _cluster_flags(argv: list[str]) -> tuple[list[str], tuple[int, int] | None, str | None]:
    """*argv* without the flags dump reads inside its letter clusters, and
    what they ask for: ``-z[level]``/``-j[level]`` (``-0z4``: the rest of the
    cluster is the level; the last one wins, as in dump; ``-y`` refused) and
    the level digits run together in order, dump's getopt rule under which
    ``-15`` and ``-1 -5`` are level 15 (None: no digit given)."""
    rest: list[str] = []
    chosen: tuple[int, int] | None = None
    digits = ""
    takes_value = False
    for n, arg in enumerate(argv):
        if takes_value or arg == "--" or not arg.startswith("-") or arg.startswith("--") or arg == "-":
            rest.append(arg)
            if arg == "--" and not takes_value:
                return rest + argv[n + 1:], chosen, digits or None
            takes_value = False
            continue
        kept = "-"
        for i, letter in enumerate(arg[1:], 1):
            if letter in _VALUE_FLAGS:
                kept += arg[i:]
                takes_value = i == len(arg) - 1
                break
            if letter == "y":
                raise CommandFailed("-y (lzo) is not supported; use -z or -j")
            if letter in _METHODS:
                chosen = (_METHODS[letter], _compress_level(arg[i + 1:]))
                break
            if "0" <= letter <= "9":
                digits += letter
            else:
                kept += letter
        if kept != "-":
            rest.append(kept)
    return rest, chosen, digits or None


def _compress_level(text: str) -> int:
    """The level written after ``-z``/``-j`` in a cluster (dump's default when none)."""
    if not text:
        return DEFAULT_LEVEL
    if not is_decimal(text.lstrip("-")):
        raise CommandFailed(f"illegal compress level -- {text}")
    level = int(text)
    if not MIN_COMPRESS_LEVEL <= level <= MAX_COMPRESS_LEVEL:
        raise CommandFailed(f"compress level must be between {MIN_COMPRESS_LEVEL} and {MAX_COMPRESS_LEVEL}")
    return level


def parse_date(text: str, flag: str = "-T") -> int:
    """Seconds since the epoch for a ``-T`` (or other *flag*'s) date: ``@seconds``, ISO 8601, or
    ctime's ``Wed Nov 25 04:18:05 2026`` (local time unless a ``+HHMM`` follows)."""
    text = text.strip()
    if text.startswith("@") and is_decimal(text[1:]):
        return _in_range(int(text[1:]), text, flag)
    import datetime as _dt  # here: most dumps give no date

    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is not None:
        try:
            seconds = int((when if when.tzinfo else when.astimezone()).timestamp())
        except (OverflowError, ValueError, OSError):  # year 1 or 9999: no local time to be in
            seconds = -1
        return _in_range(seconds, text, flag)
    record = parse_record(f"/ 0 {text}")
    if record is None:
        raise CommandFailed(f"{flag} {text!r}: not a date (use ctime format, ISO 8601 or @seconds)")
    return _in_range(record.date, text, flag)


def _in_range(date: int, text: str, flag: str) -> int:
    """*date*, when an image's header can hold it (from the epoch to January 2038)."""
    if not 0 <= date <= MAX_DATE:
        raise CommandFailed(f"{flag} {text!r}: out of range (a dump's dates run from 1970 to "
                            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(MAX_DATE))})")
    return date


def _inode_numbers(text: str, where: str) -> set[int]:
    numbers = set()
    for word in re.split(r"[\s,]+", text.strip()):
        if not word:
            continue
        if not is_decimal(word) or int(word) < 3:
            raise CommandFailed(f"{where}: {word!r} is not an inode number that can be excluded (3 or more)")
        numbers.add(int(word))
    return numbers


def _options(args: argparse.Namespace, compression: tuple[int, int] | None = None,
             digits: str | None = None) -> DumpOptions:
    if digits is not None and args.level is not None:
        raise CommandFailed(f"the level is given twice (-{digits} and --level {args.level}): give it once")
    level = int(digits) if digits is not None else 0 if args.level is None else args.level
    if not 0 <= level <= MAX_LEVEL:
        raise CommandFailed(f"dump level {level} is out of range 0 to {MAX_LEVEL}")
    if not 0 <= args.honor_level <= 10:
        raise CommandFailed("honor level must be between 0 and 10")
    check_refused(args, _REFUSED, CommandFailed)
    if args.auto_size and args.volume_blocks is not None:
        raise CommandFailed("You cannot use the a and B flags together.")
    if args.base_date and args.update:  # dump's rule: a -T dump is not part of the dumpdates chain
        raise CommandFailed("You cannot use the T and u flags together.")
    if args.read_errors < 0:
        raise CommandFailed(f"-I {args.read_errors}: give a number of read errors, 0 or more")
    if args.progress <= 0:
        raise CommandFailed(f"--progress {args.progress}: give a positive number of seconds")
    if not args.source:
        raise CommandFailed("Must specify disk or filesystem")
    if not 4 <= args.ntrec <= 256:
        raise CommandFailed(f"blocking factor {args.ntrec} is out of range 4 to 256 (-b takes KiB per record)")
    output = args.output or os.environ.get("TAPE") or ("-" if args.size_estimate else None)
    if not output:
        raise CommandFailed("no output given: use -f FILE (- for standard output, or a tape device)")
    if args.size_estimate:
        require(STDOUT, "-S prints its estimate there")
    elif output == "-":
        require(STDOUT, "-f - writes the image there")
    if args.multivolume and output == "-":
        raise CommandFailed("-M needs a file name prefix, not standard output")
    if args.qfa and output == "-":
        raise CommandFailed("-Q needs -f FILE or a tape: standard output cannot tell file positions")
    if args.volume_blocks is not None and args.volume_blocks <= 0:
        raise CommandFailed(f"-B {args.volume_blocks}: give a positive number of 1 KiB blocks")
    exclude: set[int] = set()
    for text in args.exclude:
        exclude |= _inode_numbers(text, "-e")
    for name in args.exclude_files:
        try:
            with open(name, "rb") as f:
                text = read_list(f)
        except OSError as exc:
            raise CommandFailed(f"-E {name}: {exc.strerror}") from None
        if text is None:
            raise CommandFailed(f"-E {name}: more than {MAX_LIST >> 20} MiB: not a list of inode numbers")
        exclude |= _inode_numbers(text, f"-E {name}")
    frozen_at = parse_date(args.frozen_at, "--snapshot-date") if args.frozen_at else None
    if frozen_at is not None and frozen_at > time.time():
        raise CommandFailed(f"--snapshot-date {args.frozen_at}: a date in the future (no copy froze later "
                            "than now; recorded, it would hide the changes until then from the next incremental)")
    return DumpOptions(
        source=args.source, output=output, level=level, ntrec=args.ntrec, dumpdates=args.dumpdates,
        update=args.update, base_date=parse_date(args.base_date) if args.base_date else None,
        label=args.label, quiet=args.quiet, volume_blocks=args.volume_blocks,
        multivolume=args.multivolume, toc=args.toc, qfa=args.qfa, exclude=frozenset(exclude),
        never_ask=args.yes or args.never_ask, progress_interval=args.progress, verbose=args.verbose,
        eot_script=args.eot_script, read_errors=args.read_errors, notify=args.notify,
        compress=compression[0] if compression else None,
        compress_level=compression[1] if compression else DEFAULT_LEVEL, metaonly=args.metaonly,
        file_history=not args.no_file_history,
        honor_level=args.honor_level,
        frozen_at=frozen_at,
        scratch=_barcodes(args.scratch),
    )


def _barcodes(texts: list[str]) -> frozenset[str]:
    """The barcodes of ``--scratch`` (comma-separated, the flag repeatable)."""
    names = {name.strip() for text in texts for name in text.split(",")}
    if "" in names:
        raise CommandFailed("--scratch: give barcodes, separated by commas")
    return frozenset(names)


def _report(kind: str, dumpdates: str) -> int:
    """dump -W (each path's last dump) and -w (the file systems due): dump
    takes what is due from /etc/fstab's dump frequencies, which a directory
    tree has none of, so -w lists none and -W marks none with '>'."""
    try:
        records = DumpDates(dumpdates).records()
    except DumpError as exc:
        raise CommandFailed(exc.message) from None
    if not records and not os.path.exists(dumpdates):
        print(f"No /etc/fstab or {dumpdates} file found")
        return 0
    if kind == "w":
        print("Dump these file systems:")
        return 0
    print("Last dump(s) done (Dump '>' file systems):")
    latest: dict[str, object] = {}
    for record in sorted(records, key=lambda r: (r.path, -r.date)):
        latest.setdefault(record.path, record)
    for record in latest.values():
        print(f"  {record.path:>8s}\t({'':>6s}) Last dump: Level {record.level}, Date {time.ctime(record.date)}")
    return 0


def _contexts(args: argparse.Namespace, say, warn) -> int:
    """--contexts [ID], --delete-context ID and --restart ID."""
    store = ContextStore()
    if args.contexts is not None:
        if args.contexts:
            ctx = store.load(args.contexts)
            print(details(ctx, snapshot_names(ctx.mount)), end="")
        else:
            print(listing(store.all()), end="")
        return 0
    if args.delete_context:
        ctx = store.load(args.delete_context)
        if store.delete(ctx, warn):
            say(f"deleted context {ctx.id}; snapshot {ctx.snapshot} of {ctx.mount} given back"
                + (" and deleted" if ctx.auto_created else ""))
        else:
            say(f"deleted context {ctx.id}")
        return 0
    output = args.output or os.environ.get("TAPE")
    if not output:
        raise CommandFailed("--restart needs -f: where the next volume goes")
    if args.source:
        raise CommandFailed("--restart takes no SOURCE: the context names what is dumped")
    if output == "-":
        require(STDOUT, "-f - writes the next volume there")
    try:
        on = store.load(args.restart).mount  # the volume the restart reads (for the vetoes)
    except DumpError:
        on = ""  # restart() says why
    from ..restart import restart  # here: only --restart needs it

    with session_slot("dump", args.restart, on=on):
        restart(store, args.restart, output, quiet=args.quiet, never_ask=args.yes or args.never_ask,
                say=say, warn=warn)
    return 0


def main(argv: list[str] | None = None) -> int:
    leave_objects_at_exit()  # the plan's objects, held in cycles, are not collected again at the exit
    return run(PROG, lambda: _pydump(sys.argv[1:] if argv is None else list(argv)), prefix=_DUMP,
               interrupted=EXIT_INTERRUPTED, interrupted_message="interrupted: the ENTIRE dump is aborted")


#: dump's operator lines (and its errors) start so, on stderr
_DUMP = "  DUMP: "
#: dump's status when the operator interrupts it (X_ABORT)
EXIT_INTERRUPTED = 3


def _pydump(argv: list[str]) -> int:
    def say(line: str) -> None:
        print(f"{_DUMP}{line}", file=sys.stderr, flush=True)

    def warn(line: str) -> None:
        print(f"{_DUMP}warning: {line}", file=sys.stderr, flush=True)

    rest, compression, digits = _cluster_flags(_keyless(argv))
    args = _parser().parse_args(rest)
    if args.report:
        return _report(args.report, args.dumpdates)
    if args.contexts is not None or args.delete_context or args.restart:
        return _contexts(args, say, warn)
    options = _options(args, compression, digits)
    quiet = None if options.quiet else say
    if args.size_estimate:
        with dump_source(options, args.snapshot, say=quiet, warn=warn) as (options, talk):
            print(Dump(options, warn=warn).size_estimate())
        return 0
    store = ContextStore()
    store.cleanup(warn)
    keeper = ContextKeeper(store, file_history=not args.no_file_history, say=say, warn=warn)
    # the slot first: a refused session makes no snapshot (sessions are counted with restores)
    with session_slot("dump", options.source), \
            dump_source(options, args.snapshot, say=quiet, warn=warn, on_snapshot=keeper.observe) \
            as (options, talk):
        options = dataclasses.replace(options, history=options.history + keeper.histories())
        keeper.run(Dump(options, say=talk, warn=warn))
    return 0


if __name__ == "__main__":
    sys.exit(main())
