"""The `totpd` command: parse the arguments, call one command, print the result.

Each command is a function `(args, config) -> exit status` in the module for what it works on,
which also adds it to the parser (`register`): the running service, accounts, users (and the
admin password), the secret store, the lockouts. Secrets
(seeds, PINs, passphrases) are read from standard input or a no-echo prompt, never from argv.
Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

import argparse
import sys
from pathlib import Path

from totpd import __version__
from totpd import config as config_module
from totpd.cli import accounts, lockouts, service, store, users
from totpd.errors import TotpdError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand: each command module adds its own."""
    parser = argparse.ArgumentParser(prog="totpd", description="A phone line to your TOTP codes.")
    parser.add_argument(
        "--config", type=Path, help=f"config file (default: ${config_module.CONFIG_ENV})"
    )
    parser.add_argument("--version", action="version", version=f"totpd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (service, accounts, users, store, lockouts):
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `totpd` command."""
    args = build_parser().parse_args(argv)
    try:
        config = config_module.load(args.config)
        status: int = args.run(args, config)
    except TotpdError as exc:
        print(f"totpd: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status
