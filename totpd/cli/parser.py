"""What every command module shares: a command's signature, how one joins the parser, and how
it prints a line (`echo`)."""

import argparse
import sys
from collections.abc import Callable
from typing import TextIO, TypeAlias

from totpd.config import Config
from totpd.printable import for_terminal

Command: TypeAlias = Callable[[argparse.Namespace, Config], int]
# argparse's subparsers action is generic only to type checkers, hence the string.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_command(commands: Commands, name: str, run: Command) -> argparse.ArgumentParser:
    """Add the subcommand `name`, which runs `run`; its help is the first paragraph of `run`'s
    docstring, on one line."""
    first_paragraph = (run.__doc__ or "").split("\n\n")[0]
    sub = commands.add_parser(name, help=" ".join(first_paragraph.split()))
    sub.set_defaults(run=run)
    return sub


def add_group(commands: Commands, name: str, help: str) -> Commands:
    """Add the command group `name` (`totpd NAME ACTION ...`); return where its actions go."""
    group = commands.add_parser(name, help=help)
    return group.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")


def echo(*columns: object, file: TextIO | None = None) -> None:
    """Print one line, its columns tab-separated, every unprintable character escaped: what a
    command prints may come from a QR code, the roster or a daemon, and must not drive the
    admin's terminal (clear the screen, write the clipboard with OSC 52, reorder text)."""
    line = "\t".join(for_terminal(str(column)) for column in columns)
    print(line, file=file or sys.stdout, flush=True)
