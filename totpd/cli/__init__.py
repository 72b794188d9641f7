"""The `totpd` command: parse the arguments, call one command, print the result.

Each command is a function `(args, config) -> exit status` in the module for what it works on,
which also adds it to the parser (`register`): the running service, accounts, users (and the
admin password), the secret store, the lockouts. Secrets
(seeds, PINs, passphrases) are read from standard input or a no-echo prompt, never from argv.
Errors are one line on stderr and a non-zero exit status, never a traceback. A reader that
stops early (`totpd status | head -1`) ends the command quietly, as it would a C tool.

Run as root, every command works as the owner of the state directory (totpd.privileges), so
nothing the service user planted there can make root follow a link or hand it a file.
"""

import argparse
import os
import signal
import sys
from pathlib import Path

from totpd import __version__, build
from totpd import config as config_module
from totpd.cli import accounts, lockouts, service, store, users
from totpd.cli.parser import echo
from totpd.errors import TotpdError
from totpd.privileges import run_as_state_owner


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand: each command module adds its own."""
    parser = argparse.ArgumentParser(prog="totpd", description="A phone line to your TOTP codes.")
    parser.add_argument(
        "--config", type=Path, help=f"config file (default: ${config_module.CONFIG_ENV})"
    )
    parser.add_argument("--version", action="version", version=f"totpd {__version__} ({build()})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (service, accounts, users, store, lockouts):
        module.register(commands)
    return parser


# The exit status a shell reports for a writer that SIGPIPE ended.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `totpd` command."""
    try:
        status = _run(argv)
        sys.stdout.flush()  # here, where a closed pipe can still be caught, not at exit
    except BrokenPipeError:
        # The reader is gone: nothing more can reach it. Python's documented recipe: point
        # stdout at /dev/null, so the flush at interpreter exit does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    return status


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_module.load(args.config)
        run_as_state_owner(config.paths.state_dir, daemon=args.run is service.cmd_serve)
        status: int = args.run(args, config)
    except TotpdError as exc:
        echo(f"totpd: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status
