"""The `totpd` command: parse the arguments, call one service, print the result.

Secrets (seeds, PINs) are read from standard input or a no-echo prompt, never from argv.
Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

import argparse
import getpass
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from totpd import __version__
from totpd import config as config_module
from totpd.config import Config
from totpd.directory import Directory, DirectoryFile
from totpd.enrol.enrolment import Enrolment
from totpd.errors import DirectoryError, EnrolError, TotpdError
from totpd.otp import Account, Kind, reading_at
from totpd.secrets import open_store
from totpd.users import MAX_ACCOUNTS_PER_USER, PinHasher, User

Command = Callable[[argparse.Namespace, Config], int]


def read_secret(prompt: str, confirm: bool = False) -> str:
    """One line from stdin when it is not a terminal; otherwise a no-echo prompt."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline().strip()
        if not line:
            raise TotpdError(f"nothing on standard input ({prompt.rstrip(': ')})")
        return line
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != first:
        raise TotpdError("the two entries differ")
    return first


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


# account ---------------------------------------------------------------------------------
def cmd_account_list(args: argparse.Namespace, config: Config) -> int:
    """List accounts, never their secrets."""
    directory = DirectoryFile(config.paths.state_dir).current()
    for account in directory.accounts.values():
        users = ",".join(u.name for u in directory.users.values() if account.name in u.accounts)
        timing = f"{account.period_s}s" if account.kind is Kind.TOTP else f"#{account.counter}"
        print(
            f"{account.name}\t{account.label}\t{account.kind}\t{account.algorithm}"
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


# user ------------------------------------------------------------------------------------
def _checked_accounts(names: tuple[str, ...]) -> tuple[str, ...]:
    if len(names) > MAX_ACCOUNTS_PER_USER:
        raise DirectoryError(f"a user has at most {MAX_ACCOUNTS_PER_USER} accounts (one key each)")
    return names


def cmd_user_add(args: argparse.Namespace, config: Config) -> int:
    """Add a user with a PIN (from stdin, or typed twice) and the accounts they may hear."""
    accounts = _checked_accounts(_names(args.accounts))
    pin_hash = PinHasher(config.pins).hash(read_secret("PIN: ", confirm=True))

    def change(current: Directory) -> Directory:
        if args.name in current.users:
            raise DirectoryError(f"user {args.name!r} already exists")
        number = args.number or current.next_user_number()
        callers = _names(args.callers or "")
        return current.with_user(User(args.name, number, pin_hash, accounts, callers))

    added = DirectoryFile(config.paths.state_dir).update(change).users[args.name]
    print(f"added user {added.name} (keypad number {added.number})")
    return 0


def _change_user(config: Config, name: str, change: Callable[[User], User | None]) -> None:
    def apply(current: Directory) -> Directory:
        user = current.users.get(name)
        if user is None:
            raise DirectoryError(f"no user {name!r}")
        changed = change(user)
        if changed is None:
            return Directory(
                current.accounts, {n: u for n, u in current.users.items() if n != name}
            )
        return current.with_user(changed)

    DirectoryFile(config.paths.state_dir).update(apply)


def cmd_user_passwd(args: argparse.Namespace, config: Config) -> int:
    """Set a user's PIN."""
    pin_hash = PinHasher(config.pins).hash(read_secret("New PIN: ", confirm=True))
    _change_user(config, args.name, lambda u: replace(u, pin_hash=pin_hash))
    print(f"PIN changed for {args.name}")
    return 0


def cmd_user_remove(args: argparse.Namespace, config: Config) -> int:
    """Remove a user."""
    _change_user(config, args.name, lambda u: None)
    print(f"removed user {args.name}")
    return 0


def cmd_user_assign(args: argparse.Namespace, config: Config) -> int:
    """Replace the accounts a user may hear."""
    accounts = _checked_accounts(_names(args.accounts))
    _change_user(config, args.name, lambda u: replace(u, accounts=accounts))
    print(f"{args.name} now hears: {', '.join(accounts) or 'nothing'}")
    return 0


def cmd_user_list(args: argparse.Namespace, config: Config) -> int:
    """List users: name, keypad number, accounts, caller allowlist."""
    for user in DirectoryFile(config.paths.state_dir).current().users.values():
        callers = ",".join(user.callers) or "any"
        print(f"{user.name}\t{user.number}\t{','.join(user.accounts) or '-'}\t{callers}")
    return 0


# admin page ------------------------------------------------------------------------------
def cmd_admin_passwd(args: argparse.Namespace, config: Config) -> int:
    """Set the admin web page's password (from stdin, or typed twice)."""
    from totpd.admin.password import AdminPassword

    password = read_secret("Admin page password: ", confirm=True)
    AdminPassword(config.paths.state_dir, config.pins).set(password)
    print("admin page password set; signed-in sessions end at their next request")
    return 0


# daemon and tools ------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    """Run the daemon."""
    from totpd.daemon import serve
    from totpd.systemd import configure_logging

    configure_logging(logging.INFO)  # journald fields under systemd, text on a terminal
    serve(config)
    return 0


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    """Validate the config, open the secret store and the directory, read the lockouts."""
    from totpd.services import read_lockouts

    store = open_store(config)
    if not store.signature_secret(config):
        raise TotpdError("no Vonage signature secret is configured")
    directory = DirectoryFile(config.paths.state_dir).current()
    locked = sum(state.locked for state in read_lockouts(config))  # Redis too, when configured
    storage = config.lockout.storage.partition(":")[0]  # the scheme: the URL may hold a password
    print(
        f"{config.source}: OK ({len(directory.accounts)} accounts, {len(directory.users)} users,"
        f" webhooks on {config.server.listen}, public URL {config.server.public_url},"
        f" lockout storage {storage} with {locked} lockouts)"
    )
    return 0


def cmd_call(args: argparse.Namespace, config: Config) -> int:
    """Walk one call through a running daemon, as Vonage would."""
    from totpd.emulator import Line, place_call, scripted_keypad, terminal_keypad

    secret = open_store(config).signature_secret(config)
    if not secret:
        raise TotpdError("no Vonage signature secret is configured")
    listen = config.server.listen
    line = Line(
        base_url=args.url or f"http://{listen}",
        secret=secret.encode(),
        application_id=config.vonage.application_id or "totpd-emulator",
        caller=args.caller,
        answer_method=args.answer_method,
    )

    def say(text: str) -> None:
        print(text, flush=True)

    keypad = scripted_keypad(args.press, say) if args.press else terminal_keypad(say)
    return 0 if place_call(line, keypad, say) else 1


# secrets and enrolment routes (issue "Secrets") ------------------------------------------
def _enrol(config: Config, enrolments: list[Enrolment]) -> None:
    from totpd.enrol.commit import enrol

    enrol(enrolments, open_store(config), DirectoryFile(config.paths.state_dir))
    for found in enrolments:
        account = found.account
        print(
            f"enrolled {account.name} ({account.label!r}, {account.kind}, {account.digits} digits)"
        )


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
    """Enrol every account of a Google Authenticator export (stdin, or QR images with --qr)."""
    from totpd.enrol import parse_images, parse_text

    if args.qr:
        enrolments = parse_images(args.qr)
    elif sys.stdin.isatty():
        enrolments = parse_text(getpass.getpass("otpauth-migration:// or otpauth:// URI: "))
    else:
        enrolments = parse_text(sys.stdin.read(1 << 20))
    if args.dry_run:
        for found in enrolments:
            account = found.account
            print(f"{account.name}\t{account.label}\t{account.kind}\t{account.digits}")
        return 0
    _enrol(config, enrolments)
    return 0


def cmd_secrets_init(args: argparse.Namespace, config: Config) -> int:
    """Create the vault key and seal it to this host (TPM2 when present, host key else)."""
    from totpd.secrets.provision import init_sealed_key

    sealed = init_sealed_key(config, args.output, args.with_key, args.force)
    print(f"sealed vault key written to {sealed.path}")
    if sealed.entries:
        print(f"vault re-encrypted with the new key ({sealed.entries} entries)")
    if sealed.removed_key_file is not None:
        print(f"removed the unsealed key {sealed.removed_key_file}")
    if not sealed.found_by_config:
        print(f'set in {config.source}: [secrets] sealed_key_file = "{sealed.path}"')
    print("add to totpd.service (systemctl edit totpd), then restart it:")
    print("\n".join(sealed.unit_lines()))
    return 0


def cmd_secrets_backup(args: argparse.Namespace, config: Config) -> int:
    """Write an encrypted backup of every seed and the directory (passphrase from stdin)."""
    from totpd.secrets.backup import collect, seal_backup, write_backup

    if args.file.exists() and not args.force:
        raise TotpdError(f"{args.file}: already exists (--force overwrites it)")
    directory = DirectoryFile(config.paths.state_dir).current()
    backup, missing = collect(open_store(config), directory)
    if missing:
        print(f"totpd: warning: no seed for {', '.join(missing)}; not backed up", file=sys.stderr)
    passphrase = read_secret("Backup passphrase: ", confirm=True)
    write_backup(args.file, seal_backup(backup, passphrase), force=args.force)
    print(
        f"backed up {len(directory.accounts) - len(missing)} accounts and"
        f" {len(directory.users)} users to {args.file}"
    )
    return 0


def cmd_secrets_restore(args: argparse.Namespace, config: Config) -> int:
    """Restore seeds and the directory from a backup (passphrase from stdin or a prompt)."""
    from totpd.secrets.backup import read_backup, restore

    backup = read_backup(args.file, read_secret("Backup passphrase: "))
    directory_file = DirectoryFile(config.paths.state_dir)
    restored = restore(backup, open_store(config), directory_file, args.file, args.force)
    print(f"restored {len(restored.accounts)} accounts and {len(restored.users)} users")
    return 0


def cmd_secrets_set_signature_secret(args: argparse.Namespace, config: Config) -> int:
    """Store the Vonage signature secret in the secret store (from stdin or a prompt)."""
    open_store(config).set_signature_secret(read_secret("Signature secret: ", confirm=True))
    print("Vonage signature secret stored")
    return 0


def _add_secrets_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    accounts: "argparse._SubParsersAction[argparse.ArgumentParser]",
    add: argparse.ArgumentParser,
    command: Callable[..., argparse.ArgumentParser],
) -> None:
    from totpd.secrets.credential import WITH_KEY_CHOICES

    add.add_argument("--qr", type=Path, metavar="IMAGE", help="read the URI from a QR image")
    add.add_argument("--generate", action="store_true", help="create a new secret and show it")
    add.add_argument("--issuer", help="with --generate: the issuer shown by authenticator apps")
    add.add_argument("--qr-out", type=Path, metavar="FILE", help="with --generate: .png or .svg")
    imports = command(accounts, "import", cmd_account_import)
    imports.add_argument(
        "--qr", type=Path, action="append", metavar="IMAGE", help="QR image; repeatable"
    )
    imports.add_argument("--dry-run", action="store_true", help="show the accounts, enrol none")

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


# lockouts (issue "Lockout") -------------------------------------------------------------
def cmd_status(args: argparse.Namespace, config: Config) -> int:
    """Show PIN failures on record and what is locked out, until when."""
    from totpd.services import read_lockouts

    states = read_lockouts(config)
    for state in states:
        print(state.describe())
    if not any(s.locked for s in states):
        print("nothing is locked" if states else "no PIN failures on record; nothing is locked")
    return 0


def cmd_unlock(args: argparse.Namespace, config: Config) -> int:
    """Clear lockouts: every layer, or only --caller NUMBER's and/or --user NAME's."""
    from totpd.services import clear_lockouts

    cleared = clear_lockouts(config, args.caller, args.user)
    for state in cleared:
        print(f"cleared {state.describe()}")
    print(f"unlocked ({len(cleared)} window(s) had failures on record)")
    return 0


def _add_lockout_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    command: Callable[..., argparse.ArgumentParser],
) -> None:
    command(commands, "status", cmd_status)
    unlock = command(commands, "unlock", cmd_unlock)
    unlock.add_argument("--caller", metavar="NUMBER", help='only this caller ("withheld" too)')
    unlock.add_argument("--user", metavar="NAME", help="only this user")


# parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="totpd", description="A phone line to your TOTP codes.")
    parser.add_argument(
        "--config", type=Path, help=f"config file (default: ${config_module.CONFIG_ENV})"
    )
    parser.add_argument("--version", action="version", version=f"totpd {__version__}")
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
    command(accounts, "list", cmd_account_list)
    command(accounts, "remove", cmd_account_remove).add_argument("name")
    command(accounts, "code", cmd_account_code).add_argument("name")

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
    _add_secrets_commands(commands, accounts, add, command)
    _add_lockout_commands(commands, command)
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
