"""``restore -i``: browse the image's directories and pick what to extract.

The directories are read first (as for ``-t``); the commands move around
that tree and keep a list of chosen names.  ``extract`` reads the rest of
the image (it is read front to back); a later ``extract`` reads an image
file again from its start, while a tape or a pipe cannot go back and says so.
``setmodes`` puts the owners, modes and times back on what is on the list and
already extracted, without reading the image.
"""

from __future__ import annotations

import os
import shlex
from typing import TextIO

from .errors import DumpError
from .restore import Extracted, Restore

_HELP = """Available commands are:
\tls [arg] - list directory
\tcd arg - change directory
\tpwd - print current directory
\tadd [arg] - add `arg' to list of files to be extracted
\tdelete [arg] - delete `arg' from list of files to be extracted
\textract - extract requested files
\tsetmodes - set modes, owners and times of requested directories and extracted files
\twhat - list dump header information
\tverbose - toggle verbose flag (useful with ``ls'')
\thelp or `?' - print this list
\tquit - immediately exit program
If no `arg' is supplied, the current directory is used"""


class Session:
    """One interactive session over an engine whose directories are read."""

    def __init__(self, engine: Restore, stdin: TextIO, out: TextIO, target: str = ".") -> None:
        self.r = engine
        self.stdin = stdin
        self.out = out
        self.target = target
        self.cwd = b"."
        self.chosen: list[bytes] = []
        self.passes = 0  # extract passes over the image so far
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
        print(text, file=self.out)

    def run(self) -> None:
        while True:
            print("pyrestore > ", end="", file=self.out, flush=True)
            line = self.stdin.readline()
            if not line:
                self._say("")
                return
            try:
                words = shlex.split(line)
            except ValueError as exc:
                self._say(f"bad command line: {exc}")
                continue
            if not words:
                continue
            cmd, args = words[0], words[1:] or [None]
            if cmd in ("quit", "q", "xit", "exit"):
                return
            handler = getattr(self, f"_cmd_{cmd}", None) if cmd.isidentifier() else None
            if cmd == "?":
                handler = self._cmd_help
            if handler is None:
                self._say(f"{cmd}: unknown command; type ? for help")
                continue
            if cmd in ("extract", "setmodes"):
                handler(None)
                continue
            for arg in args:
                handler(arg)

    # -- the commands ---------------------------------------------------------------

    def _cmd_help(self, _arg: str | None) -> None:
        self._say(_HELP)

    def _cmd_pwd(self, _arg: str | None) -> None:
        self._say("/" + os.fsdecode(self.cwd[2:]))

    def _cmd_what(self, _arg: str | None) -> None:
        for line in self.r.describe():
            self._say(line)

    def _cmd_verbose(self, _arg: str | None) -> None:
        self.r.opts.verbose = not self.r.opts.verbose
        self._say("verbose mode " + ("on" if self.r.opts.verbose else "off"))

    def _cmd_cd(self, arg: str | None) -> None:
        path = self._resolve(arg)
        ino = self.r.lookup(os.fsdecode(path))
        if ino is None:
            self._say(f"{os.fsdecode(path)}: not on the image")
        elif ino not in self.r.dirs:
            self._say(f"{os.fsdecode(path)}: not a directory")
        else:
            self.cwd = path

    def _cmd_ls(self, arg: str | None) -> None:
        path = self._resolve(arg)
        ino = self.r.lookup(os.fsdecode(path))
        if ino is None:
            self._say(f"{os.fsdecode(path)}: not on the image")
            return
        if ino not in self.r.dirs:
            self._say(self._entry(path.rsplit(b"/", 1)[-1], ino, path))
            return
        self._say(f"{os.fsdecode(path)}:")
        for entry in sorted(self.r.dirs[ino].entries, key=lambda e: e.name):
            if entry.name in (b".", b".."):
                continue
            if entry.ino not in self.r.dumped and entry.ino not in self.r.dirs:
                continue
            self._say(self._entry(entry.name, entry.ino, path + b"/" + entry.name))

    def _entry(self, name: bytes, ino: int, path: bytes) -> str:
        mark = "*" if self._is_chosen(path) else " "
        tail = "/" if ino in self.r.dirs else ""
        num = f"{ino:10d} " if self.r.opts.verbose else ""
        return f"{num}{mark}{os.fsdecode(name)}{tail}"

    def _is_chosen(self, path: bytes) -> bool:
        return any(path == c or path.startswith(c + b"/") or c == b"." for c in self.chosen)

    def _cmd_add(self, arg: str | None) -> None:
        path = self._resolve(arg)
        if self.r.lookup(os.fsdecode(path)) is None:
            self._say(f"{os.fsdecode(path)}: not on the image")
        elif path not in self.chosen:
            self.chosen.append(path)

    def _cmd_delete(self, arg: str | None) -> None:
        path = self._resolve(arg)
        before = len(self.chosen)
        self.chosen = [c for c in self.chosen if not (c == path or c.startswith(path + b"/"))]
        if len(self.chosen) == before:
            self._say(f"{os.fsdecode(path)}: not on the extraction list"
                      + (" (delete its parent and add the names you want)" if self._is_chosen(path) else ""))

    def _cmd_extract(self, _arg: str | None) -> None:
        if not self.chosen:
            self._say("no files selected for extraction")
            return
        if self.passes:
            try:
                self.r.read_again()
            except DumpError as exc:
                self._say(f"extract: {exc.message}")
                return
        self.passes += 1
        self.r.extract_read(self.target, [os.fsdecode(c) for c in self.chosen])

    def _cmd_setmodes(self, _arg: str | None) -> None:
        extracted = self.r.extracted
        _, dirs = self.r.selection([os.fsdecode(c) for c in self.chosen]) if self.chosen else ({}, {})
        if extracted is not None:
            dirs = {**extracted.dirs, **dirs}
        if not self.r.opts.set_root_modes:
            dirs = {ino: p for ino, p in dirs.items() if p != b"."}
        if not dirs and not (extracted and extracted.leaves):
            self._say("setmodes: nothing on the extraction list")
            return
        self.r.set_modes(self.target, dirs)
