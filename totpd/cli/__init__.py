"""The `totpd` command: parse the arguments, call one command, print the result.

Each command is a function `(args, config) -> exit status` in the module for what it works on:
accounts, users (and the admin password), the secret store, the running service. Secrets
(seeds, PINs, passphrases) are read from standard input or a no-echo prompt, never from argv.
Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from totpd import __version__, build
from totpd import config as config_module
from totpd.cli.accounts import (
    cmd_account_add,
    cmd_account_code,
    cmd_account_import,
    cmd_account_list,
    cmd_account_remove,
)
from totpd.cli.service import cmd_call, cmd_check_config, cmd_serve, cmd_status, cmd_unlock
from totpd.cli.store import (
    cmd_secrets_backup,
    cmd_secrets_init,
    cmd_secrets_restore,
    cmd_secrets_set_signature_secret,
)
from totpd.cli.users import (
    cmd_admin_passwd,
    cmd_user_add,
    cmd_user_assign,
    cmd_user_list,
    cmd_user_passwd,
    cmd_user_remove,
)
from totpd.config import Config
from totpd.errors import TotpdError
from totpd.secrets.credential import WITH_KEY_CHOICES

Command = Callable[[argparse.Namespace, Config], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="totpd", description="A phone line to your TOTP codes.")
    parser.add_argument(
        "--config", type=Path, help=f"config file (default: ${config_module.CONFIG_ENV})"
    )
    parser.add_argument("--version", action="version", version=f"totpd {__version__} ({build()})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        group: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str, run: Command
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=(run.__doc__ or "").splitlines()[0])
        sub.set_defaults(run=run)
        return sub

    command(commands, "serve", cmd_serve)
    command(commands, "check-config", cmd_check_config)
    call = command(commands, "call", cmd_call)
    call.add_argument("--url", help="daemon base URL (default: http://[server] listen)")
    call.add_argument("--from", dest="caller", default="447700900001", help="caller's number")
    call.add_argument(
        "--press",
        action="append",
        default=[],
        metavar="DIGITS",
        help="keypad input for the next prompt ('' = silence, 'say:TEXT' = speech); repeatable",
    )
    call.add_argument("--answer-method", choices=["GET", "POST"], default="POST")

    account = command(commands, "account", cmd_account_list)
    accounts = account.add_subparsers(dest="account_command", required=True, metavar="ACTION")
    add = command(accounts, "add", cmd_account_add)
    add.add_argument("name")
    add.add_argument("--label", help='what the voice calls it, e.g. "GitHub"')
    add.add_argument("--qr", type=Path, metavar="IMAGE", help="read the URI from a QR image")
    add.add_argument("--generate", action="store_true", help="create a new secret and show it")
    add.add_argument("--issuer", help="with --generate: the issuer shown by authenticator apps")
    add.add_argument("--qr-out", type=Path, metavar="FILE", help="with --generate: .png or .svg")
    command(accounts, "list", cmd_account_list)
    command(accounts, "remove", cmd_account_remove).add_argument("name")
    command(accounts, "code", cmd_account_code).add_argument("name")
    imports = command(accounts, "import", cmd_account_import)
    imports.add_argument(
        "--qr", type=Path, action="append", metavar="IMAGE", help="QR image; repeatable"
    )
    imports.add_argument("--dry-run", action="store_true", help="show the accounts, enrol none")

    user = command(commands, "user", cmd_user_list)
    users = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    user_add = command(users, "add", cmd_user_add)
    user_add.add_argument("name")
    user_add.add_argument("--accounts", required=True, help="comma-separated account names")
    user_add.add_argument("--number", type=int, help="keypad number (default: the next free)")
    user_add.add_argument("--callers", help="comma-separated caller numbers allowed (default any)")
    command(users, "passwd", cmd_user_passwd).add_argument("name")
    command(users, "remove", cmd_user_remove).add_argument("name")
    assign = command(users, "assign", cmd_user_assign)
    assign.add_argument("name")
    assign.add_argument("--accounts", required=True, help="comma-separated account names")
    command(users, "list", cmd_user_list)
    admin = command(commands, "admin", cmd_admin_passwd)
    admins = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    command(admins, "passwd", cmd_admin_passwd)

    group = command(commands, "secrets", cmd_secrets_init)
    secrets = group.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    init = command(secrets, "init", cmd_secrets_init)
    init.add_argument("--output", type=Path, help="sealed key file (default: see config)")
    init.add_argument("--with-key", choices=WITH_KEY_CHOICES, default="auto")
    init.add_argument("--force", action="store_true", help="replace an existing sealed key")
    backup = command(secrets, "backup", cmd_secrets_backup)
    backup.add_argument("file", type=Path)
    backup.add_argument("--force", action="store_true", help="overwrite an existing file")
    restore = command(secrets, "restore", cmd_secrets_restore)
    restore.add_argument("file", type=Path)
    restore.add_argument("--force", action="store_true", help="replace existing accounts/users")
    command(secrets, "set-signature-secret", cmd_secrets_set_signature_secret)

    command(commands, "status", cmd_status)
    unlock = command(commands, "unlock", cmd_unlock)
    unlock.add_argument("--caller", metavar="NUMBER", help='only this caller ("withheld" too)')
    unlock.add_argument("--user", metavar="NAME", help="only this user")
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
