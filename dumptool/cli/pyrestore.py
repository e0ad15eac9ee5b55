"""pyrestore: restore files from a dump image, with the flags of Linux restore.

Modes: ``-t`` list, ``-x [names]`` extract, ``-r`` rebuild (incrementals in
level order, ``./restoresymtable``), ``-C`` compare with the tree on disk,
``-i`` interactive, ``-P FILE`` a QFA file from the image, ``-R`` resume a ``-r`` that stopped at a volume change.
restore's keyless syntax works too (``pyrestore rf FILE``, ``tf -``); flags
restore has and pyrestore does not (``-c``, ``-k``, ``-e``,
``-E``) are refused in one line.  Exit status: 0 done, 1 damage or an
error, 2 usage or (``-C``, as restore) files that differ.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from snapdump.exits import CommandFailed, run
from snapdump.standard_streams import STDIN, STDOUT, is_closed, require
from tapelib.device import is_remote

from ..errors import DumpError
from ..format import parse_qfa
from ..medium import volume_file
from ..operator import run_volume_script
from ..restore import Options, Restore, RestoreError, VolumeInput
from ..volume_input import ShelfVolumes
from ..sessions import session_slot
from ..symtab import SYMTAB_NAME, SymbolTable
from .syntax import MAX_LIST, RefusedFlag, VersionAction, add_refused, check_refused, expand_key, read_list

PROG = "pyrestore"
EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_DIFFER = 2  # -C: files differ (restore's exit status)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyrestore", add_help=False,
        description="Restore files from a BSD/Linux dump image (like Linux restore). "
                    "restore's keyless syntax works too: pyrestore rf FILE, pyrestore tf -.")
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("--version", action=VersionAction)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("-t", dest="mode", action="store_const", const="t", help="list the files on the image")
    mode.add_argument("-x", dest="mode", action="store_const", const="x",
                      help="extract the named files and directories (everything when none is named)")
    mode.add_argument("-r", dest="mode", action="store_const", const="r",
                      help="rebuild the dumped tree in the current directory; apply incrementals in level order")
    mode.add_argument("-i", dest="mode", action="store_const", const="i",
                      help="interactive: browse the image and choose what to extract")
    mode.add_argument("-C", dest="mode", action="store_const", const="C",
                      help="compare the image with the files on disk (see -D)")
    mode.add_argument("-R", dest="mode", action="store_const", const="R",
                      help="resume a -r that stopped (killed, or no next volume) from its checkpoint in "
                           "./restoresymtable: -f names the volume it asked for")
    mode.add_argument("-P", dest="qfa_out", metavar="FILE",
                      help="write the QFA file for the named files (all when none) from the image, as dump -Q "
                           "would have: for restore -Q and pyrestore -Q; nothing is extracted")
    p.add_argument("-f", dest="file", default=os.environ.get("TAPE", "/dev/st0"),
                   help="the image: a file, - for standard input, a tape device or host:device")
    p.add_argument("-b", dest="blocksize", type=int, help="blocking factor (found by itself on files and tapes)")
    p.add_argument("-s", dest="tape_file", type=int, default=1, help="the dump is file N on the tape (from 1)")
    p.add_argument("-D", dest="directory",
                   help="with -C: the directory to compare against (the dumped file system's path by default)")
    p.add_argument("-T", dest="tmpdir", help="directory for temporary files")
    p.add_argument("-y", action="store_true", help="never ask: fail instead of asking for the next volume")
    p.add_argument("-M", dest="multivolume", action="store_true",
                   help="-f is a prefix: the volumes are the files PREFIX001, PREFIX002, ... (dump -M's); "
                        "each next one is opened without asking")
    p.add_argument("-v", action="store_true", help="say what is done to each file")
    p.add_argument("-N", action="store_true", help="do not write anything to disk")
    p.add_argument("-o", action="store_true", help="with -x: set the owner and mode of '.' too")
    p.add_argument("-u", action="store_true", help="replace existing files, links and devices")
    p.add_argument("-m", action="store_true", help="with -x: names are inode numbers")
    p.add_argument("--streams-as-files", action="store_true",
                   help="into a directory not on snapfs: a named stream too large for one xattr is written "
                        "as the file FILE:STREAM beside its file (else it is skipped with a warning)")
    p.add_argument("-Q", dest="qfa", metavar="FILE",
                   help="the quick file access map dump -Q wrote for this image: -x goes straight to each "
                        "named file's position (on a later volume too) instead of reading everything before "
                        "it; -t lists each file's volume and position")
    p.add_argument("--rename", dest="renames", action="append", default=[], metavar="OLD=NEW",
                   help="with -x: what is extracted at or under OLD lands at or under NEW (several allowed)")
    p.add_argument("--force", action="store_true",
                   help="with -x and -r: no check of the target's free space and inodes; stop cleanly at a "
                        "full target (-x names what was not restored)")
    p.add_argument("--no-file-history", dest="file_history", action="store_false",
                   help="with -x: do not use the file history pydump kept for the image (read it whole)")
    p.add_argument("-0", dest="nul", action="store_true",
                   help="with -t: end each file's line with a NUL, not a newline (for xargs -0)")
    p.add_argument("-X", dest="name_file", metavar="FILE",
                   help="with -t and -x: the names to list or extract, one a line (- for standard input)")
    p.add_argument("-h", dest="dir_only", action="store_true",
                   help="with -x: a directory named is extracted itself, not the files in it")
    p.add_argument("-L", dest="limit", type=int, default=0, metavar="LIMIT",
                   help="with -C: stop at LIMIT compare errors")
    p.add_argument("-A", dest="toc", metavar="FILE",
                   help="with -t: list the archive file (table of contents) dump -A / pydump -A wrote, "
                        "without the medium")
    p.add_argument("-a", action="store_true",
                   help="read the volumes from the first on without asking where to start (always so here); "
                        "on a shelf drive, load each next volume's cartridge without asking")
    p.add_argument("-F", dest="script", metavar="SCRIPT",
                   help="run SCRIPT DEVICE VOLUME at the beginning of each volume: exit 0, the volume is ready "
                        "(no question); 1, ask for it as usual; other, abort")
    p.add_argument("-d", action="store_true", help="debug (accepted: nothing more is printed)")
    p.add_argument("-l", action="store_true",
                   help="-f host:name is a file or pipe on that host, not a tape drive (read as a byte stream: "
                        "a compressed dump file too); local files, pipes and drives are told apart by themselves")
    p.add_argument("-V", action="store_true",
                   help="volumes on other media than tape (accepted: the next volume's path is asked for anyway)")
    add_refused(p, _REFUSED)
    p.add_argument("-H", dest="hash_size", type=int, metavar="N",
                   help="restore's directory hash table size (accepted: the directories are always hashed)")
    p.add_argument("names", nargs="*", help="files and directories (for -t and -x)")
    return p


def _asker(image: str, never: bool, prefix: str | None = None, *, read_through: bool = False,
           script: "_Script | None" = None):
    """The next volume's name, asked for at a volume's end: with -M the next
    file; else the operator's answer, and on a shelf drive the cartridge in
    the slots that holds it is offered ("yes" loads it; -a, -y: loaded
    without asking).  A -F *script* runs first, once a volume, as restore
    runs it: exit 0, the volume is ready (opened without asking); 1, go on
    as without it.  Set ``ask.input`` to the :class:`VolumeInput` it serves;
    ``ask.new_pass()`` at another pass (``-i``'s next extract, which asks
    for volume 1 again) runs the script again for each volume."""
    tried: set[int] = set()
    shelf = ShelfVolumes.of(image) if prefix is None and image != "-" else None
    device = [image]  # restore's magtape: the name the next volume is looked for at (an answer changes it)

    def ask(number: int, problem: str) -> str | None:
        first_try = number not in tried
        tried.add(number)
        name = volume_file(prefix, number) if prefix is not None else device[0]
        if script is not None and first_try and script.run(name, number) == 0:
            return name  # the script made it ready
        if prefix is not None and first_try:  # -M: the next file, once; then ask as usual
            return name
        image = getattr(ask.input, "image", None)
        found = shelf.find(image, number) if shelf is not None and image is not None else None
        offer = ""
        if found is not None:
            barcode, slot = found
            if never or read_through:
                return _load(shelf, barcode, slot, number)
            offer = f" (on {barcode} in slot {slot}: 'yes' loads it into drive {shelf.drive})"
        if problem:
            print(f"pyrestore: {problem}", file=sys.stderr)
        if never:
            wanted = "another extract pass starts on volume 1" if number == 1 else \
                f"the dump continues on volume {number}"
            raise RestoreError(f"{image}: {wanted}; run without -y to be asked for it")
        name = _answer(image, number, f"Mount volume {number}{offer} and enter its path "
                                      "('none' if there is none): ")
        if found is not None and name.lower() in ("y", "yes"):
            return _load(shelf, *found, number)
        if not name or name == "none":
            return None
        device[0] = name
        return name

    ask.input = None  # type: ignore[attr-defined]
    ask.new_pass = tried.clear  # type: ignore[attr-defined]  # -i's next extract: each volume's script again
    return ask


class _Script:
    """restore's ``-F SCRIPT``, run at the beginning of each volume as
    ``SCRIPT DEVICE VOLUME`` (after "Launching SCRIPT" on standard error):
    exit 0, the volume is ready; 1, ask for it as without a script (with
    -M the next file is opened anyway); anything else aborts the restore
    ("Restore aborted by the beginning of tape script", exit 1).  DEVICE is
    the name of the drive on its host for ``host:device``, as restore gives it."""

    def __init__(self, script: str, *, image_on_stdin: bool, rebuilding: bool) -> None:
        self.script = script
        import subprocess  # here: only -F runs a script

        self._stdin = subprocess.DEVNULL if image_on_stdin else None  # never let it read the image
        self._rebuilding = rebuilding

    def run(self, device: str, volume: int) -> int:
        if is_remote(device):  # as restore: the drive's name on its host, without "host:"
            device = device.partition(":")[2]
        print(f"Launching {self.script}", file=sys.stderr, flush=True)
        code = run_volume_script(self.script, device, volume, stdin=self._stdin)
        if code not in (0, 1):
            raise RestoreError(f"Restore aborted by the beginning of tape script ({self.script} {device} "
                               f"{volume} exited {code}){self._resume_hint(volume)}")
        return code

    def _resume_hint(self, volume: int) -> str:
        """How a -r stopped before *volume* goes on, when its checkpoint is saved."""
        if not self._rebuilding:
            return ""
        try:
            point = SymbolTable.load(SYMTAB_NAME).resume
        except (DumpError, OSError):
            return ""
        if point is None or point.volume != volume:
            return ""
        return f"; go on with pyrestore -R -f VOLUME-{volume} in this directory"


def _load(shelf: ShelfVolumes, barcode: str, slot: int, number: int) -> str:
    """Load volume *number* (*barcode*, in *slot*) into the shelf's drive; the drive's name."""
    shelf.load(slot)
    print(f"pyrestore: loaded {barcode} from slot {slot} into drive {shelf.drive} (volume {number})",
          file=sys.stderr)
    return shelf.device


def _answer(image: str, number: int, question: str) -> str:
    """The operator's answer to *question* (on the terminal when standard input is the image)."""
    if image == "-":
        from ..operator import open_terminal  # only when a volume is asked for

        tty = open_terminal()
        if tty is None:
            raise RestoreError(f"the dump continues on volume {number} and there is no terminal to ask "
                               "for it on")
        with tty:
            return tty.ask(question) or ""
    if is_closed(STDIN):
        raise RestoreError(f"the dump continues on volume {number} and standard input is closed: "
                           "there is nothing to ask for it on")
    print(question, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip()


def _talk(*, nul_lines: bool) -> dict[str, Callable[[str], None]]:
    """The engine's callbacks, as restore prints: its lines on standard
    output, its messages on standard error after the program's name, its
    own lines there as they are; -t's lines end with NUL under -0."""
    end = "\0" if nul_lines else "\n"

    def say(line: str) -> None:
        print(line)

    def warn(message: str) -> None:
        print(f"pyrestore: {message}", file=sys.stderr)

    def tell(line: str) -> None:
        print(line, file=sys.stderr)

    def listed(line: str) -> None:
        sys.stdout.write(line + end)

    return {"say": say, "warn": warn, "tell": tell, "listed": listed}


def _first_volume(mode: str) -> int:
    """The volume to open first with -M: 1, or for -R the one the interrupted
    -r asked for (its checkpoint in ./restoresymtable says which)."""
    if mode != "R":
        return 1
    try:
        point = SymbolTable.load(SYMTAB_NAME).resume
    except DumpError:
        return 1  # the engine says what is wrong with the table
    return point.volume if point is not None else 1


#: restore's flags that take an argument (getopt's "A:b:D:f:F:L:P:Q:s:T:X:")
_WITH_ARGUMENT = "AbDfFLPQsTX"


def keyless(argv: list[str]) -> list[str]:
    """restore's old syntax as flags: ``rf FILE`` is ``-r -f FILE`` (each
    letter of the key a flag, the ones that take an argument taking the next
    words in order), as restore's ``obsolete()`` reads it."""
    if not argv or argv[0].startswith("-"):
        return argv
    return expand_key(argv, _WITH_ARGUMENT, _Usage)


class _Usage(CommandFailed):
    """A command line pyrestore refuses (one line, exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


#: restore's flags pyrestore refuses, and why
_REFUSED = [
    RefusedFlag("-c", "-c (convert a dump of the old 4.1BSD format) is not supported: pydump and Linux dump "
                "write the new one", "convert an old-format dump (not supported)"),
    RefusedFlag("-k", "-k (Kerberos) is not supported: remote tapes go through rmt over ssh",
                "Kerberos for a remote tape (not supported)"),
    RefusedFlag("-e", "-e (an option of restore's SELinux build) is not supported",
                "SELinux build's option (not supported)"),
    RefusedFlag("-E", "-E (an SELinux MLS level) is not supported: SELinux labels are restored as the xattrs the "
                "image holds", "SELinux MLS level (not supported)", "MLS"),
]


def _names_from(path: str) -> list[str]:
    """-X: one name a line, empty lines skipped (restore's way)."""
    try:
        if path == "-":
            text = read_list(sys.stdin.buffer)
        else:
            with open(path, "rb") as f:
                text = read_list(f)
    except OSError:
        raise _Usage(f"can't open file for reading -- {path}") from None
    if text is None:
        raise _Usage(f"-X {path}: more than {MAX_LIST >> 20} MiB: not a list of names")
    return [line for line in text.split("\n") if line]


def main(argv: list[str] | None = None) -> int:
    return run(PROG, lambda: _pyrestore(list(sys.argv[1:] if argv is None else argv)),
               interrupted=EXIT_FAIL, interrupted_message="interrupted")


def _usage(args: argparse.Namespace) -> None:
    """Refuse (exit 2) a command line restore would refuse; read -X's names."""
    check_refused(args, _REFUSED, _Usage)
    if args.file == "-":
        require(STDIN, "-f - reads the image from it")
    if args.name_file == "-":
        require(STDIN, "-X - reads the names from it")
    if args.mode == "i":
        require(STDIN, "-i reads its commands from it")
    if args.mode == "t":
        require(STDOUT, "-t lists the image there")
    if args.limit < 0:
        raise _Usage("limit must be greater than 0")
    if args.toc and args.mode not in ("t", "x", "i"):
        raise _Usage(f"A option is not valid for {args.mode} command")
    if args.name_file:
        if args.mode not in ("t", "x", "P"):
            raise _Usage("-X works with -t, -x and -P")
        if args.name_file == "-" and args.file == "-":
            raise _Usage("-X - and -f - cannot both read standard input")
        args.names += _names_from(args.name_file)
    if args.blocksize is not None and not 1 <= args.blocksize <= 1024:
        raise _Usage("-b must be between 1 and 1024")
    if args.tape_file < 1:
        raise _Usage("-s must be 1 or more")
    if args.names and args.mode in ("r", "R", "C"):
        raise _Usage(f"-{args.mode} takes no file names")
    if args.multivolume and args.file == "-":
        raise _Usage("-M needs -f PREFIX (the volumes' common start), not standard input")
    if args.qfa and args.mode not in ("x", "t"):
        raise _Usage("-Q works with -x and -t")


def _pyrestore(argv: list[str]) -> int:
    args = _parser().parse_args(keyless(argv))
    if args.qfa_out is not None:
        args.mode = "P"
    _usage(args)
    if args.tmpdir:
        os.environ["TMPDIR"] = args.tmpdir
    renames = []
    for text in args.renames:
        old, eq, new = text.partition("=")
        if not eq or not old.strip("/.") or not new.strip("/."):
            raise _Usage(f"--rename {text}: give OLD=NEW, two names on the image and in the target")
        if ".." in new.split("/") or ".." in old.split("/"):  # (refused here: not after making NEW's folders)
            raise _Usage(f"--rename {text}: a name with '..' (OLD and NEW are names under the target)")
        renames.append((old, new))
    if renames and args.mode != "x":
        raise _Usage("--rename works with -x")
    if args.force and args.mode not in ("x", "r"):
        raise _Usage("--force works with -x and -r")
    opts = Options(renames=renames, force=args.force, verbose=args.v, dry_run=args.N, unlink=args.u,
                   set_root_modes=args.o, by_inode=args.m, dir_only=args.dir_only, compare_limit=args.limit,
                   file_history=args.file_history, streams_as_files=args.streams_as_files,
                   input_blocks=args.blocksize, volumes_not_tape=args.V)
    talk = _talk(nul_lines=args.nul)
    source = slot = None
    try:
        if not (args.toc and args.mode == "t"):  # a session reads an image: -t -A reads only the archive file
            slot = session_slot("restore", args.file)
        if args.qfa:
            try:
                with open(args.qfa, encoding="ascii", errors="replace") as f:
                    opts.qfa = parse_qfa(f.read())
            except OSError as exc:
                raise RestoreError(f"cannot read the QFA file {args.qfa}: {exc.strerror}") from None
        prefix = args.file if args.multivolume else None
        first = volume_file(args.file, _first_volume(args.mode)) if prefix is not None else args.file

        script = _Script(args.script, image_on_stdin=args.file == "-",
                                 rebuilding=args.mode in ("r", "R")) if args.script else None

        def medium() -> VolumeInput:
            if script is not None:  # as restore: before the first volume is opened (not for -t/-i -A alone)
                script.run(first, _first_volume(args.mode))
            ask = _asker(first, args.y, prefix, read_through=args.a, script=script)
            ask.input = VolumeInput(first, ask=ask, tape_file=args.tape_file, remote_file=args.l)
            ask.input.on_new_pass = ask.new_pass
            ask.input.asks_first_again = script is not None  # restore runs it before volume 1 again
            return ask.input

        def on_medium() -> Restore:
            return Restore(medium(), opts, **talk)

        if args.toc and args.mode in ("t", "i"):  # -t, -i: the archive file instead of the medium
            source = VolumeInput(args.toc)
        else:  # -x -A: the medium has it all (the directories too)
            source = medium()
        engine = Restore(source, opts, **talk)
        if args.mode == "t":
            engine.list(args.names)
        elif args.mode == "x":
            engine.extract(".", args.names)
        elif args.mode == "P":
            engine.write_qfa(args.qfa_out, args.names)
        elif args.mode == "r":
            engine.rebuild(".")
        elif args.mode == "R":
            engine.resume(".")
        elif args.mode == "i":
            if args.file == "-":
                raise RestoreError("-i reads its commands from standard input: give the image with -f FILE")
            engine.browse()
            from ..interactive import Session  # -i only

            session = Session(engine, sys.stdin, sys.stdout, err=sys.stderr,
                              medium=on_medium if args.toc else None)
            try:
                session.run()
            finally:
                if session.r is not engine:  # -A: the medium opened at extract
                    session.r.input.close()
            return EXIT_FAIL if engine.failed or session.r.failed else EXIT_OK
        else:
            diffs = engine.compare(args.directory)
            if engine.compare_limit_reached:
                print("Compare errors limit reached, exiting...")
                return EXIT_FAIL if engine.failed else EXIT_DIFFER
            if diffs:
                print(f"Some files were modified!  {diffs} compare errors")
                return EXIT_FAIL if engine.failed else EXIT_DIFFER
        return EXIT_FAIL if engine.failed else EXIT_OK
    finally:
        if source is not None:
            try:
                source.close()
            except DumpError:
                pass
        if slot is not None:
            slot.release()


if __name__ == "__main__":
    sys.exit(main())
