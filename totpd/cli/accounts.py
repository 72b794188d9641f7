"""`totpd account ...`: enrol, list, read and remove accounts (seeds go to the secret store)."""

import argparse
import getpass
import sys
from dataclasses import replace
from pathlib import Path

from totpd.cli.prompt import read_secret
from totpd.config import Config
from totpd.directory import Directory, DirectoryFile
from totpd.enrol.enrolment import Enrolment
from totpd.errors import DirectoryError, EnrolError
from totpd.otp import Account, Kind, reading_at
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
        print(f"QR code written to {args.qr_out} (it holds the secret: delete it once scanned)")
    if on_terminal:
        print(qr_text(uri))
        print(uri)
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
            print(
                f"{account.name}\t{printable(account.label)}\t{account.type_name}"
                f"\t{account.digits}\t{timing}"
            )
        return 0
    _enrol(config, enrolments)
    return 0


def printable(text: str) -> str:
    """`text` with control characters escaped: labels come from files anyone can write."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
    from totpd.enrol.commit import enrol

    enrol(enrolments, open_store(config), DirectoryFile(config.paths.state_dir))
    for found in enrolments:
        account = found.account
        print(
            f"enrolled {account.name} ({account.label!r}, {account.type_name},"
            f" {account.digits} digits)"
        )


def cmd_account_list(args: argparse.Namespace, config: Config) -> int:
    """List accounts, never their secrets."""
    directory = DirectoryFile(config.paths.state_dir).current()
    for account in directory.accounts.values():
        users = ",".join(u.name for u in directory.users.values() if account.name in u.accounts)
        timing = f"{account.period_s}s" if account.kind is Kind.TOTP else f"#{account.counter}"
        print(
            f"{account.name}\t{account.label}\t{account.type_name}\t{account.algorithm}"
            f"\t{account.digits}\t{timing}\t{users or '-'}"
        )
    return 0


def cmd_account_remove(args: argparse.Namespace, config: Config) -> int:
    """Forget an account and its seed, and take it off every user's menu."""

    def change(current: Directory) -> Directory:
        if args.name not in current.accounts:
            raise DirectoryError(f"no account {args.name!r}")
        users = {
            n: replace(u, accounts=tuple(a for a in u.accounts if a != args.name))
            for n, u in current.users.items()
        }
        accounts = {n: a for n, a in current.accounts.items() if n != args.name}
        return Directory(accounts, users)

    DirectoryFile(config.paths.state_dir).update(change)
    open_store(config).delete_seed(args.name)
    print(f"removed {args.name}")
    return 0


def cmd_account_code(args: argparse.Namespace, config: Config) -> int:
    """Print an account's current code (HOTP: the next one, and advance the counter)."""
    import time

    directory = DirectoryFile(config.paths.state_dir)
    account = directory.current().accounts.get(args.name)
    if account is None:
        raise DirectoryError(f"no account {args.name!r}")
    reading = reading_at(account, open_store(config).seed(args.name), time.time(), 0)
    if account.kind is Kind.HOTP:

        def advance(current: Directory) -> Directory:
            now = current.accounts[args.name]
            return current.with_account(replace(now, counter=now.counter + 1))

        directory.update(advance)
        print(reading.digits)
    else:
        print(f"{reading.digits}  (valid for {reading.seconds_left} more seconds)")
    return 0
