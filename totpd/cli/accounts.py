"""`totpd account ...`: enrol, list, read and remove accounts (seeds go to the secret store)."""

import argparse
import getpass
import sys
from dataclasses import replace
from pathlib import Path

from totpd.cli.parser import Commands, add_command, add_group, echo
from totpd.cli.prompt import read_secret
from totpd.config import Config
from totpd.enrol.backups import FORMATS as BACKUP_FORMATS
from totpd.enrol.enrolment import Enrolment
from totpd.errors import EnrolError, RosterError
from totpd.otp import Account, Kind, reading_at
from totpd.roster import Roster, RosterFile
from totpd.secrets import open_store


def cmd_account_add(args: argparse.Namespace, config: Config) -> int:
    """Enrol one account from stdin, from a QR image (--qr) or with a new secret (--generate)."""
    from totpd.enrol import parse_image, parse_text
    from totpd.enrol.generate import QR_SUFFIXES, generate, qr_text, write_qr
    from totpd.enrol.uri import format_uri

    if args.qr is None and not args.generate:
        found = parse_text(read_secret("otpauth:// URI or base32 secret: "))
        if len(found) != 1:
            raise EnrolError("expected exactly one account; use `totpd account import` for exports")
        _enrol(config, [found[0].renamed(args.name, args.label)])
        return 0
    if args.qr is not None:
        if args.generate:
            raise EnrolError("--qr and --generate do not go together")
        found = parse_image(args.qr)
        if len(found) != 1:
            raise EnrolError(f"{args.qr}: {len(found)} accounts; use `totpd account import --qr`")
        _enrol(config, [found[0].renamed(args.name, args.label)])
        return 0
    on_terminal = sys.stdout.isatty()
    if args.qr_out is None and not on_terminal:
        raise EnrolError("--generate shows a QR code on a terminal; elsewhere use --qr-out FILE")
    if args.qr_out is not None and args.qr_out.suffix.lower() not in QR_SUFFIXES:
        raise EnrolError(f"{args.qr_out}: the QR file must end in .png or .svg")
    issuer = args.issuer or ""
    label = args.label or issuer or args.name
    enrolment = generate(Account(name=args.name, label=label, issuer=issuer))
    _enrol(config, [enrolment])
    uri = format_uri(enrolment)
    if args.qr_out is not None:
        write_qr(uri, args.qr_out)
        echo(f"QR code written to {args.qr_out} (it holds the secret: delete it once scanned)")
    if on_terminal:
        print(qr_text(uri))  # block characters, drawn here
        echo(uri)
    return 0


def cmd_account_import(args: argparse.Namespace, config: Config) -> int:
    """Enrol every account of a backup file (--file), a Google Authenticator export or QR images."""
    from totpd.enrol import parse_images, parse_text

    if args.file is not None:
        if args.qr:
            raise EnrolError("--file and --qr do not go together")
        enrolments = _from_backup(args.file, args.format)
    elif args.qr:
        enrolments = parse_images(args.qr)
    elif sys.stdin.isatty():
        enrolments = parse_text(getpass.getpass("otpauth-migration:// or otpauth:// URI: "))
    else:
        enrolments = parse_text(sys.stdin.read(1 << 20))
    if args.dry_run:
        for found in enrolments:
            account = found.account
            timing = f"{account.period_s}s" if account.kind is Kind.TOTP else f"#{account.counter}"
            echo(account.name, account.label, account.type_name, account.digits, timing)
        return 0
    _enrol(config, enrolments)
    return 0


def _from_backup(path: Path, format_name: str) -> list[Enrolment]:
    from totpd.enrol.backups import MAX_FILE_BYTES, parse_backup

    def passphrase() -> str:
        # Only the newline goes: spaces may be part of a passphrase.
        if sys.stdin.isatty():
            typed = getpass.getpass(f"Passphrase of {path.name}: ")
        else:
            typed = sys.stdin.readline().rstrip("\r\n")
        if not typed:
            raise EnrolError(f"{path}: the backup is encrypted and no passphrase was given")
        return typed

    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise EnrolError(f"{path}: cannot read the file ({exc.strerror})") from None
    try:
        return parse_backup(raw, format_name, passphrase)
    except EnrolError as exc:
        raise EnrolError(f"{path}: {exc}") from None


def _enrol(config: Config, enrolments: list[Enrolment]) -> None:
    from totpd.enrol.commit import store_enrolments

    store_enrolments(enrolments, open_store(config), RosterFile(config.paths.state_dir))
    for found in enrolments:
        account = found.account
        echo(
            f"enrolled {account.name} ({account.label!r}, {account.type_name},"
            f" {account.digits} digits)"
        )


def cmd_account_list(args: argparse.Namespace, config: Config) -> int:
    """List accounts, never their secrets."""
    roster = RosterFile(config.paths.state_dir).current()
    for account in roster.accounts.values():
        users = ",".join(u.name for u in roster.users.values() if account.name in u.accounts)
        timing = f"{account.period_s}s" if account.kind is Kind.TOTP else f"#{account.counter}"
        echo(
            account.name,
            account.label,
            account.type_name,
            account.algorithm,
            account.digits,
            timing,
            users or "-",
        )
    return 0


def cmd_account_remove(args: argparse.Namespace, config: Config) -> int:
    """Forget an account and its seed, and take it off every user's menu."""

    def change(current: Roster) -> Roster:
        if args.name not in current.accounts:
            raise RosterError(f"no account {args.name!r}")
        users = {
            n: replace(u, accounts=tuple(a for a in u.accounts if a != args.name))
            for n, u in current.users.items()
        }
        accounts = {n: a for n, a in current.accounts.items() if n != args.name}
        return Roster(accounts, users)

    RosterFile(config.paths.state_dir).update(change)
    open_store(config).delete_seed(args.name)
    echo(f"removed {args.name}")
    return 0


def cmd_account_code(args: argparse.Namespace, config: Config) -> int:
    """Print an account's current code (HOTP: the next one, and advance the counter)."""
    import time

    roster = RosterFile(config.paths.state_dir)
    account = roster.current().accounts.get(args.name)
    if account is None:
        raise RosterError(f"no account {args.name!r}")
    reading = reading_at(account, open_store(config).seed(args.name), time.time(), 0)
    if account.kind is Kind.HOTP:

        def advance(current: Roster) -> Roster:
            now = current.accounts[args.name]
            return current.with_account(replace(now, counter=now.counter + 1))

        roster.update(advance)
        echo(reading.digits)
    else:
        echo(f"{reading.digits}  (valid for {reading.seconds_left} more seconds)")
    return 0


def register(commands: Commands) -> None:
    """Add `account` and its actions to the parser."""
    actions = add_group(commands, "account", "Enrol, import, list, remove accounts; show a code.")
    add = add_command(actions, "add", cmd_account_add)
    add.add_argument("name")
    add.add_argument("--label", help='what the voice calls it, e.g. "GitHub"')
    add.add_argument("--qr", type=Path, metavar="IMAGE", help="read the URI from a QR image")
    add.add_argument("--generate", action="store_true", help="create a new secret and show it")
    add.add_argument("--issuer", help="with --generate: the issuer shown by authenticator apps")
    add.add_argument("--qr-out", type=Path, metavar="FILE", help="with --generate: .png or .svg")
    add_command(actions, "list", cmd_account_list)
    add_command(actions, "remove", cmd_account_remove).add_argument("name")
    add_command(actions, "code", cmd_account_code).add_argument("name")
    imports = add_command(actions, "import", cmd_account_import)
    imports.add_argument(
        "--qr", type=Path, action="append", metavar="IMAGE", help="QR image; repeatable"
    )
    imports.add_argument("--file", type=Path, help="a backup file of Aegis, 2FAS, andOTP, ente...")
    imports.add_argument("--format", choices=BACKUP_FORMATS, default="auto", help="of --file")
    imports.add_argument("--dry-run", action="store_true", help="show the accounts, enrol none")
