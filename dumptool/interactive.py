"""``restore -i``: browse the image's directories and pick what to extract.

The directories are read first (as for ``-t``); the commands move around
that tree and keep a list of chosen names.  ``extract`` reads the rest of
the image (it is read front to back); a later ``extract`` reads an image
file again from its start, rewinds a tape holding volume 1 to the dump or,
with a later volume in the drive, asks for volume 1 as restore does
(:meth:`~dumptool.volume_input.VolumeInput.start_again`), while a pipe
cannot go back and says so.
``setmodes`` puts the owners, modes and times back on what is on the list and
already extracted, without reading the image.  Names take restore's globs
(``*.py``, ``t*``, ``[ab]*``), ``ls`` prints restore's columns and marks
(``*`` on the extraction list; ``/``, ``@``, ``=``, ``#`` after directories,
links, fifos and sockets, devices), ``prompt`` shows the file system and the
current directory, ``Debug`` (restore's hidden command) lists what is not
on the image with ``^``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
from collections.abc import Callable
from typing import TextIO

from .errors import DumpError
from .format import ROOTINO, DirentType, other_dump
from .restore import Extracted, Restore, RestoreError

_HELP = """Available commands are:
\tls [arg] - list directory
\tcd arg - change directory
\tpwd - print current directory
\tadd [arg] - add `arg' to list of files to be extracted
\tdelete [arg] - delete `arg' from list of files to be extracted
\textract - extract requested files
\tsetmodes - set modes, owners and times of requested directories and extracted files
\tquit - immediately exit program
\twhat - list dump header information
\tverbose - toggle verbose flag (useful with ``ls'')
\tprompt - toggle the prompt display
\thelp or `?' - print this list
If no `arg' is supplied, the current directory is used"""

#: restore's commands in the order its command loop tries them: a command
#: is any start of one of these names ("l" is ls, "p" pwd, "x" xit).
_COMMANDS = ("add", "cd", "delete", "Debug", "extract", "help", "ls", "pwd", "prompt", "quit", "setmodes",
             "verbose", "what", "xit")

#: ls's mark after a name, by the entry's d_type (restore's interactive.c)
_POSTFIX = {DirentType.DT_LNK: "@", DirentType.DT_FIFO: "=", DirentType.DT_SOCK: "=",
            DirentType.DT_CHR: "#", DirentType.DT_BLK: "#", DirentType.DT_WHT: "%"}

_MAGIC = re.compile(rb"[*?[]")


class Session:
    """One interactive session over an engine whose directories are read.

    As restore's: the prompt, the echo of a command read from a file or pipe
    and ``what`` go to *out*, everything else (``ls``, messages) to *err*.
    """

    def __init__(self, engine: Restore, stdin: TextIO, out: TextIO, target: str = ".",
                 err: TextIO | None = None, medium: Callable[[], Restore] | None = None) -> None:
        self.r = engine
        #: -A: *engine* read the archive file; the first extract opens the medium with this
        self.medium = medium
        self.stdin = stdin
        self.out = out
        self.err = err if err is not None else out
        self.target = target
        self.cwd = b"."
        #: the names on the extraction list (restore's NEW flag): a name
        #: added marks everything under it, a name deleted unmarks the same
        self.marked: set[bytes] = set()
        self.passes = 0  # extract passes over the image so far
        self.prompt_mode = False
        self.debug = False
        try:
            self.echo = not stdin.isatty()
        except (AttributeError, ValueError):
            self.echo = True
        engine.extracted = Extracted()

    def _resolve(self, arg: str | None) -> bytes:
        parts = [] if arg and arg.startswith("/") else self.cwd.split(b"/")[1:]
        for part in os.fsencode(arg or "").split(b"/"):
            if part in (b"", b"."):
                continue
            if part == b"..":
                if parts:
                    parts.pop()
            else:
                parts.append(part)
        return b"/".join([b"."] + parts)

    def _say(self, text: str) -> None:
        print(text, file=self.err)

    def _shown(self, ino: int) -> bool:
        """Whether ls and the globs see this inode (restore: in the dump map, or -d/Debug)."""
        return self.debug or ino in self.r.dumped or ino in self.r.dirs

    def _children(self, ino: int) -> list:
        node = self.r.dirs.get(ino)
        if node is None:
            return []
        return [e for e in node.entries if e.name not in (b".", b"..")]

    def expand(self, arg: str | None) -> list[bytes]:
        """*arg* made a ``./path`` from the current directory, its ``*``,
        ``?`` and ``[...]`` expanded over the image's tree in sorted order as
        restore's glob does (a name with no match stays as it is)."""
        path = self._resolve(arg)
        if not _MAGIC.search(path):
            return [path]
        found = [(b".", ROOTINO)]
        for part in path.split(b"/")[1:]:
            magic = bool(_MAGIC.search(part))
            step = []
            for at, ino in found:
                for e in self._children(ino):
                    if not self._shown(e.ino):
                        continue
                    if magic:
                        if e.name.startswith(b".") and not part.startswith(b"."):
                            continue
                        if not fnmatch.fnmatchcase(e.name, part):
                            continue
                    elif e.name != part:
                        continue
                    step.append((at + b"/" + e.name, e.ino))
            found = step
        return sorted(p for p, _ in found) or [path]

    def run(self) -> None:
        while True:
            if self.prompt_mode:
                assert self.r.header is not None
                where = os.fsdecode(self.cwd[1:])
                print(f"pyrestore:{os.fsdecode(self.r.header.c_filesys)}:{where} > ", end="", file=self.out,
                      flush=True)
            else:
                print("pyrestore > ", end="", file=self.out, flush=True)
            line = self.stdin.readline()
            if not line:
                print("", file=self.out)
                return
            if self.echo:
                print(line, end="" if line.endswith("\n") else "\n", file=self.out, flush=True)
            try:
                words = shlex.split(line)
            except ValueError as exc:
                self._say(f"bad command line: {exc}")
                continue
            if not words:
                continue
            cmd, args = words[0], words[1:] or [None]
            name = "help" if cmd == "?" else next((c for c in _COMMANDS if c.startswith(cmd)), None)
            if name in ("quit", "xit"):
                return
            if name is None:
                self._say(f"{cmd}: unknown command; type ? for help")
                continue
            handler = getattr(self, f"_cmd_{name}")
            if name in ("extract", "setmodes", "help", "pwd", "what", "verbose", "prompt", "Debug"):
                handler(None)
                continue
            for arg in args:
                for path in self.expand(arg):
                    handler(path)
                    if name == "cd":
                        break  # restore's cd takes the first name
            try:
                self.err.flush()
            except ValueError:
                pass

    # -- the commands ---------------------------------------------------------------

    def _cmd_help(self, _arg: bytes | None) -> None:
        self._say(_HELP)

    def _cmd_pwd(self, _arg: bytes | None) -> None:
        self._say("/" + os.fsdecode(self.cwd[2:]))

    def _cmd_what(self, _arg: bytes | None) -> None:
        for line in self.r.describe():
            print(line, file=self.out)

    def _cmd_verbose(self, _arg: bytes | None) -> None:
        self.r.opts.verbose = not self.r.opts.verbose
        self._say("verbose mode " + ("on" if self.r.opts.verbose else "off"))

    def _cmd_prompt(self, _arg: bytes | None) -> None:
        self.prompt_mode = not self.prompt_mode
        self._say("prompt mode " + ("on" if self.prompt_mode else "off"))

    def _cmd_Debug(self, _arg: bytes | None) -> None:  # noqa: N802 (restore's name)
        self.debug = not self.debug
        self._say("debugging mode " + ("on" if self.debug else "off"))

    def _lookup(self, path: bytes) -> int | None:
        ino = self.r.lookup(os.fsdecode(path))
        if ino is None:
            self._say(f"{os.fsdecode(path)} is not on the tape")
        return ino

    def _cmd_cd(self, path: bytes) -> None:
        ino = self._lookup(path)
        if ino is None:
            return
        if ino not in self.r.dirs:
            self._say(f"{os.fsdecode(path)}: not a directory")
        else:
            self.cwd = path

    def _entry_of(self, path: bytes):
        """The directory entry naming *path* (None for the root)."""
        parent, _, name = path.rpartition(b"/")
        pino = self.r.lookup(os.fsdecode(parent)) if parent else None
        for e in self._children(pino) if pino is not None else ():
            if e.name == name:
                return e
        return None

    def _cmd_ls(self, path: bytes) -> None:
        ino = self.r.lookup(os.fsdecode(path))
        if ino is None or not self._shown(ino):
            return  # as restore: nothing for a name not on the image
        if ino not in self.r.dirs:
            entry = self._entry_of(path)
            name = path.rsplit(b"/", 1)[-1]
            if len(path) - (len(self.cwd) + 1) > len(name):  # restore's choice of the name to show
                name = path[len(self.cwd) + 1:]
            kind = entry.type if entry is not None else DirentType.DT_REG
            self._format([(ino, name, self._mark(ino, path), self._postfix(ino, kind))])
            return
        self._say(f"{os.fsdecode(path)}:")
        rows = []
        for e in sorted(self.r.dirs[ino].entries, key=lambda e: e.name):
            if not self._shown(e.ino):
                continue
            if e.name in (b".", b"..") and not self.r.opts.verbose:
                continue
            child = path + b"/" + e.name
            mark = " " if e.name in (b".", b"..") else self._mark(e.ino, child)
            rows.append((e.ino, e.name, mark, self._postfix(e.ino, e.type)))
        if rows:
            self._format(rows)
        self._say("")

    def _mark(self, ino: int, path: bytes) -> str:
        if self.debug and ino not in self.r.dumped and ino not in self.r.dirs:
            return "^"
        return "*" if path in self.marked else " "

    def _postfix(self, ino: int, kind: int) -> str:
        if kind in (DirentType.DT_DIR, DirentType.DT_UNKNOWN):
            return "/" if ino in self.r.dirs else " "
        return _POSTFIX.get(kind, " ")

    def _format(self, rows: list[tuple[int, bytes, str, str]]) -> None:
        """restore's columns: 81 characters wide, filled down then across."""
        verbose = self.r.opts.verbose
        if not verbose:
            rows = [(i, bytes(c if 0x20 <= c < 0x7f else 0x3f for c in n), m, x) for i, n, m, x in rows]
        width = max(len(n) for _, n, _, _ in rows)
        prefix = any(m != " " for _, _, m, _ in rows)
        postfix = any(x != " " for _, _, _, x in rows)
        width += prefix + postfix
        precision = len(str(max([ROOTINO] + [i for i, _, _, _ in rows])))
        if verbose:
            width += precision + 1
        width += 1
        columns = max(1, 81 // width)
        lines = -(-len(rows) // columns)
        out = []
        for i in range(lines):
            for j in range(columns):
                k = j * lines + i
                ino, name, mark, post = rows[k]
                cell = (f"{ino:{precision}d} " if verbose else "") + (mark if prefix else "") + \
                    os.fsdecode(name) + (post if postfix else "")
                if k + lines >= len(rows):
                    out.append(cell + "\n")
                    break
                out.append(cell + " " * (width - (len(name) + prefix + postfix + (precision + 1 if verbose else 0))))
        self.err.write("".join(out))

    def _subtree(self, path: bytes, ino: int) -> list[bytes]:
        """*path* and every name under it on the image (each directory once:
        a damaged image's loop ends)."""
        found, stack, seen = [path], [(path, ino)], {ino}
        while stack:
            at, dino = stack.pop()
            for e in self._children(dino):
                if not self._shown(e.ino):
                    continue
                child = at + b"/" + e.name
                found.append(child)
                if e.ino in self.r.dirs and e.ino not in seen:
                    seen.add(e.ino)
                    stack.append((child, e.ino))
        return found

    def _cmd_add(self, path: bytes) -> None:
        ino = self._lookup(path)
        if ino is not None:
            self.marked.update(self._subtree(path, ino))

    def _cmd_delete(self, path: bytes) -> None:
        ino = self.r.lookup(os.fsdecode(path))
        if ino is None or path not in self.marked:
            self._say(f"{os.fsdecode(path)}: not on extraction list")
            return
        self.marked.difference_update(self._subtree(path, ino))

    def _chosen(self) -> tuple[list[str], set[bytes]]:
        """The extraction list as few names as it takes: a directory whose
        every name is on the list by its name (all it holds follows), one
        with only some of them by itself (in the set returned), then those."""
        order, kids, seen = [], {}, {ROOTINO}
        stack = [(b".", ROOTINO)]
        while stack:
            at, dino = stack.pop()
            order.append(at)
            kids[at] = []
            for e in self._children(dino):
                if not self._shown(e.ino):
                    continue
                child = at + b"/" + e.name
                is_dir = e.ino in self.r.dirs and e.ino not in seen
                kids[at].append((child, is_dir))
                if is_dir:
                    seen.add(e.ino)
                    stack.append((child, e.ino))
        full: dict[bytes, bool] = {}
        for at in reversed(order):  # children before their parents
            full[at] = at in self.marked and all(full[c] if d else c in self.marked for c, d in kids[at])
        names, alone, todo = [], set(), [b"."]
        while todo:
            at = todo.pop()
            if full[at]:
                names.append(at)
                continue
            if at in self.marked:
                names.append(at)
                alone.add(at)
            for child, is_dir in kids[at]:
                if is_dir:
                    todo.append(child)
                elif child in self.marked:
                    names.append(child)
        return [os.fsdecode(n) for n in sorted(names)], alone

    def _cmd_extract(self, _arg: bytes | None) -> None:
        if not self.marked:
            self._say("no files selected for extraction")
            return
        if self.medium is not None:
            if not self._open_medium():
                return
        elif self.passes:
            try:
                self.r.read_again()
            except DumpError as exc:
                print(f"extract: {exc.message}", file=self.out)
                return
        self.passes += 1
        names, self.r.opts.dirs_alone = self._chosen()  # what was deleted under a directory stays out
        try:
            self.r.extract_read(self.target, names)
        finally:
            self.r.opts.dirs_alone = set()

    def _open_medium(self) -> bool:
        """-A: go on with the medium, which must hold the archive file's dump."""
        assert self.medium is not None and self.r.header is not None
        try:
            engine = self.medium()
        except DumpError as exc:
            print(f"extract: {exc.message}", file=self.out)
            return False
        try:
            engine.read_directories()
            assert engine.header is not None
            differs = other_dump(engine.header, self.r.header)  # (a date alone: any dump of the same second)
            if differs:
                raise RestoreError(f"{engine.input.name} holds another dump than the archive file ({differs})")
        except DumpError as exc:
            engine.input.close()
            print(f"extract: {exc.message}", file=self.out)
            return False
        engine.extracted = self.r.extracted
        engine.opts = self.r.opts
        self.r.input.close()
        self.r, self.medium = engine, None
        return True

    def _cmd_setmodes(self, _arg: bytes | None) -> None:
        extracted = self.r.extracted
        names, self.r.opts.dirs_alone = self._chosen() if self.marked else ([], set())
        try:
            _, dirs = self.r.selection(names) if names else ({}, {})
        finally:
            self.r.opts.dirs_alone = set()
        if extracted is not None:
            dirs = {**extracted.dirs, **dirs}
        if not self.r.opts.set_root_modes:
            dirs = {ino: p for ino, p in dirs.items() if p != b"."}
        if not dirs and not (extracted and extracted.leaves):
            self._say("setmodes: nothing on the extraction list")
            return
        self.r.set_modes(self.target, dirs)
