"""What every command module shares: a command's signature, and how one joins the parser."""

import argparse
from collections.abc import Callable
from typing import TypeAlias

from totpd.config import Config

Command: TypeAlias = Callable[[argparse.Namespace, Config], int]
# argparse's subparsers action is generic only to type checkers, hence the string.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_command(commands: Commands, name: str, run: Command) -> argparse.ArgumentParser:
    """Add the subcommand `name`, which runs `run`; its help is the first line of `run`'s
    docstring."""
    sub = commands.add_parser(name, help=(run.__doc__ or "").splitlines()[0])
    sub.set_defaults(run=run)
    return sub
