"""Every command answers --version with its name and the project's release, and exits 0."""

from __future__ import annotations

import argparse
import subprocess
from importlib import metadata

import pytest
from conftest import console_script

RELEASE = metadata.version("snapdump")


@pytest.mark.parametrize("name", ["pydump", "pyrestore", "pytape", "pyrmt", "pyndmpd", "snapfs"])
def test_version(name: str) -> None:
    r = subprocess.run([console_script(name), "--version"], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, f"{name} {RELEASE}", "")


def test_pymt_version_is_mt_st_s() -> None:
    r = subprocess.run([console_script("pymt"), "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith(f"pymt (snapdump {RELEASE})\n"), r.stdout


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from dumptool.cli import pydump, pyrestore
    from ndmp import cli as pyndmpd
    from snapfs.cli import main as snapfs
    from tapelib.cli import pytape

    return [("pydump", pydump._parser()), ("pyrestore", pyrestore._parser()), ("pytape", pytape.build_parser()),
            ("snapfs", snapfs.build_parser()), ("pyndmpd", pyndmpd._parser())]


def _unhelped(parser: argparse.ArgumentParser, where: str, seen: set[int]) -> list[str]:
    """The arguments and subcommands under *parser* with no help text."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest for choice in action._choices_actions if choice.help}
            for name, sub in action.choices.items():
                if id(sub) in seen:
                    continue  # an alias of a command already looked at
                seen.add(id(sub))
                if name not in helped:
                    missing.append(f"{where} {name}")
                missing += _unhelped(sub, f"{where} {name}", seen)
        elif action.help != argparse.SUPPRESS and not action.help:
            missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_argument_and_command_has_help_text() -> None:
    missing = [m for name, parser in _parsers() for m in _unhelped(parser, name, set())]
    assert missing == []
    r = subprocess.run([console_script("pyrmt"), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--log FILE  append each command and reply to FILE" in r.stdout
