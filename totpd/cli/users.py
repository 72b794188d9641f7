"""`totpd user ...` and `totpd admin passwd`: who may call in, with which PIN, to hear what;
and the admin page's password."""

import argparse
from collections.abc import Callable
from dataclasses import replace

from totpd import catalogues, phone
from totpd.cli.parser import Commands, add_command, add_group, echo
from totpd.cli.prompt import comma_list, read_secret
from totpd.config import Config
from totpd.errors import PhoneNumberError, RosterError
from totpd.pins import PinHasher
from totpd.roster import Roster, RosterFile
from totpd.users import MAX_ACCOUNTS_PER_USER, User


def cmd_user_add(args: argparse.Namespace, config: Config) -> int:
    """Add a user with a PIN (from stdin, typed twice, or --generate-pin) and the accounts
    they may hear."""
    accounts = _account_names(args.accounts)
    callers = () if args.callers is None else _caller_numbers(args.callers)
    assigned, pin_hash = _new_pin(config, args.generate_pin, "PIN: ")
    language = catalogues.find(args.language).tag if args.language else ""

    def change(current: Roster) -> Roster:
        if args.name in current.users:
            raise RosterError(f"user {args.name!r} already exists")
        number = current.next_user_number() if args.number is None else args.number
        return current.with_user(User(args.name, number, pin_hash, accounts, callers, language))

    added = RosterFile(config.paths.state_dir).update(change).users[args.name]
    echo(f"added user {added.name} (keypad number {added.number})")
    _show_assigned(assigned)
    return 0


def cmd_user_passwd(args: argparse.Namespace, config: Config) -> int:
    """Set a user's PIN, or with --duress the duress PIN (from stdin, typed twice, or
    --generate-pin); either must differ from the other."""
    if args.freeze is not None and not args.duress:
        raise RosterError("--freeze and --no-freeze go with --duress")
    hasher = PinHasher(config.pins)
    kind = "duress PIN" if args.duress else "PIN"
    chosen = "" if args.generate_pin else read_secret(f"New {kind}: ", confirm=True)
    if chosen:
        hasher.check_policy(chosen)  # before any Argon2 work
    assigned: list[str] = []

    def change(user: User) -> User:
        # Under the directory's lock: the other PIN cannot change meanwhile. Known only as a
        # hash, it is compared by verifying the new PIN against it.
        other = user.pin_hash if args.duress else user.duress_hash

        def same(pin: str) -> bool:
            return bool(other) and hasher.verify_sync(other, pin, rehash=False).ok

        if chosen:
            if same(chosen):
                other_kind = "PIN" if args.duress else "duress PIN"
                raise RosterError(f"{user.name}: the {kind} must differ from the {other_kind}")
            pin, pin_hash = chosen, hasher.hash(chosen)
        else:
            pin, pin_hash = hasher.generate()
            while same(pin):
                pin, pin_hash = hasher.generate()
            assigned.append(pin)
        if not args.duress:
            return replace(user, pin_hash=pin_hash)
        freezes = user.duress_freezes if args.freeze is None else args.freeze
        return replace(user, duress_hash=pin_hash, duress_freezes=freezes)

    changed = _change_user(config, args.name, change)
    if not args.duress:
        echo(f"PIN changed for {args.name}")
    else:
        echo(
            f"duress PIN set for {args.name}: refused like a wrong PIN, and reported to the"
            " [notify] targets"
            + (f"; it also {_FREEZES.format(name=args.name)}" if changed.duress_freezes else "")
        )
    _show_assigned("".join(assigned), kind)
    return 0


_FREEZES = "freezes {name}'s codes until `totpd unlock --user {name}`"


def cmd_user_duress(args: argparse.Namespace, config: Config) -> int:
    """Whether a user's duress PIN also freezes the codes (--freeze, --no-freeze), or remove
    it (--remove)."""

    def change(user: User) -> User:
        if args.setting == "remove":
            return replace(user, duress_hash="", duress_freezes=False)
        if not user.duress_hash:
            raise RosterError(
                f"{user.name} has no duress PIN: set one first"
                f" (totpd user passwd {user.name} --duress)"
            )
        return replace(user, duress_freezes=args.setting == "freeze")

    _change_user(config, args.name, change)
    name = args.name
    match args.setting:
        case "remove":
            echo(f"{name} has no duress PIN now")
        case "freeze":
            echo(f"{name}'s duress PIN now also {_FREEZES.format(name=name)}")
        case _:
            echo(f"{name}'s duress PIN no longer freezes the codes")
    return 0


def _new_pin(config: Config, generate: bool, prompt: str) -> tuple[str, str]:
    """(the PIN totpd assigned or "", its hash): a random one, or one a person chooses."""
    hasher = PinHasher(config.pins)
    if generate:
        return hasher.generate()
    return "", hasher.hash(read_secret(prompt, confirm=True))


def _show_assigned(pin: str, kind: str = "PIN") -> None:
    """Print an assigned PIN (or duress PIN), once, to standard output only (never a log, never
    a file): shown after it is stored, so a failed command shows none."""
    if pin:
        print(f"{kind}: {pin}  (this is the only time it is shown: totpd keeps only its hash)")


def cmd_user_remove(args: argparse.Namespace, config: Config) -> int:
    """Remove a user."""
    _remove_user(config, args.name)
    echo(f"removed user {args.name}")
    return 0


def cmd_user_assign(args: argparse.Namespace, config: Config) -> int:
    """Replace the accounts a user may hear."""
    accounts = _account_names(args.accounts)
    _change_user(config, args.name, lambda u: replace(u, accounts=accounts))
    echo(f"{args.name} now hears: {', '.join(accounts) or 'nothing'}")
    return 0


def cmd_user_callers(args: argparse.Namespace, config: Config) -> int:
    """Replace the numbers a user may call from (or --any)."""
    if args.any == (args.numbers is not None):
        raise RosterError("give the numbers (comma-separated) or --any, not both")
    callers = () if args.any else _caller_numbers(args.numbers)
    _change_user(config, args.name, lambda u: replace(u, callers=callers))
    shown = ", ".join(phone.shown(c) for c in callers) or "any number"
    echo(f"{args.name} may call from: {shown}")
    return 0


def cmd_user_set_language(args: argparse.Namespace, config: Config) -> int:
    """Set the language a user hears once their PIN is accepted ("default": call.language)."""
    language = "" if args.language == "default" else catalogues.find(args.language).tag
    _change_user(config, args.name, lambda u: replace(u, language=language))
    echo(f"{args.name} now hears {language or f'the default, {config.call.language}'}")
    return 0


def cmd_user_list(args: argparse.Namespace, config: Config) -> int:
    """List users: name, keypad number, accounts, caller allowlist, language, and whether a
    duress PIN is set (never anything about it but that, and whether it freezes)."""
    for user in RosterFile(config.paths.state_dir).current().users.values():
        callers = ",".join(phone.shown(c) for c in user.callers) or "any"
        language = user.language or f"{config.call.language} (default)"
        duress = "no"
        if user.duress_hash:
            duress = "yes, freezes the codes" if user.duress_freezes else "yes"
        accounts = ",".join(user.accounts) or "-"
        echo(user.name, user.number, accounts, callers, language, f"duress: {duress}")
    return 0


def _change_user(config: Config, name: str, change: Callable[[User], User]) -> User:
    """Apply `change` to user `name` under the directory's lock; the user as saved."""

    def apply(current: Roster) -> Roster:
        user = current.users.get(name)
        if user is None:
            raise RosterError(f"no user {name!r}")
        return current.with_user(change(user))

    return RosterFile(config.paths.state_dir).update(apply).users[name]


def _remove_user(config: Config, name: str) -> None:
    def apply(current: Roster) -> Roster:
        if name not in current.users:
            raise RosterError(f"no user {name!r}")
        return Roster(current.accounts, {n: u for n, u in current.users.items() if n != name})

    RosterFile(config.paths.state_dir).update(apply)


def _account_names(text: str) -> tuple[str, ...]:
    """The comma-separated account names of --accounts: at most one per keypad key."""
    names = comma_list(text)
    if len(names) > MAX_ACCOUNTS_PER_USER:
        raise RosterError(f"a user has at most {MAX_ACCOUNTS_PER_USER} accounts (one key each)")
    return names


def _caller_numbers(text: str) -> tuple[str, ...]:
    """The comma-separated numbers of an allowlist, each in E.164 digits; an empty entry is an
    error, not "any number" (an unset shell variable must not open the line to everyone)."""
    entries = text.split(",")
    if any(not entry.strip() for entry in entries):
        raise PhoneNumberError(
            "an empty entry in the caller list: give numbers like +44 7700 900123, or leave"
            " the list out for any number"
        )
    numbers = [phone.parse_number(entry) for entry in entries]
    return tuple(dict.fromkeys(numbers))  # each number once, in the order given


def cmd_admin_passwd(args: argparse.Namespace, config: Config) -> int:
    """Set the admin web page's password (from stdin, or typed twice)."""
    from totpd.admin.password import AdminPassword

    password = read_secret("Admin page password: ", confirm=True)
    AdminPassword(config.paths.state_dir, config.pins).set(password)
    echo("admin page password set; signed-in sessions end at their next request")
    return 0


GENERATE_HELP = "assign a random PIN (pins.generated_length digits) and print it, once"


def register(commands: Commands) -> None:
    """Add `user` and `admin` and their actions to the parser."""
    actions = add_group(
        commands, "user", "Add, change and remove the users who call: PINs, menus, allowlists."
    )
    add = add_command(actions, "add", cmd_user_add)
    add.add_argument("name")
    add.add_argument("--accounts", required=True, help="comma-separated account names")
    add.add_argument("--number", type=int, help="keypad number (default: the next free)")
    add.add_argument("--generate-pin", action="store_true", help=GENERATE_HELP)
    add.add_argument(
        "--callers",
        help="comma-separated numbers allowed to call, e.g. +44 7700 900123 (default any)",
    )
    add.add_argument(
        "--language", help="BCP-47 tag of the prompts, e.g. de-DE (default: call.language)"
    )
    passwd = add_command(actions, "passwd", cmd_user_passwd)
    passwd.add_argument("name")
    passwd.add_argument("--generate-pin", action="store_true", help=GENERATE_HELP)
    passwd.add_argument(
        "--duress",
        action="store_true",
        help="set the duress PIN instead: refused like a wrong PIN, and reported (docs/duress.md)",
    )
    passwd.add_argument(
        "--freeze",
        action=argparse.BooleanOptionalAction,
        help="with --duress: entering it also freezes the user's codes until `unlock --user`"
        " (default: as before; off for a first duress PIN)",
    )
    duress = add_command(actions, "duress", cmd_user_duress)
    duress.add_argument("name")
    setting = duress.add_mutually_exclusive_group(required=True)
    for flag, value, what in (
        ("--freeze", "freeze", "entering the duress PIN also freezes the user's codes"),
        ("--no-freeze", "no-freeze", "it does not"),
        ("--remove", "remove", "remove the duress PIN"),
    ):
        setting.add_argument(flag, dest="setting", action="store_const", const=value, help=what)
    add_command(actions, "remove", cmd_user_remove).add_argument("name")
    assign = add_command(actions, "assign", cmd_user_assign)
    assign.add_argument("name")
    assign.add_argument("--accounts", required=True, help="comma-separated account names")
    callers = add_command(actions, "callers", cmd_user_callers)
    callers.add_argument("name")
    callers.add_argument("numbers", nargs="?", help="comma-separated, e.g. +44 7700 900123")
    callers.add_argument("--any", action="store_true", help="no allowlist: any number may call")
    set_language = add_command(actions, "set-language", cmd_user_set_language)
    set_language.add_argument("name")
    set_language.add_argument("language", help="BCP-47 tag, e.g. de-DE, or default")
    add_command(actions, "list", cmd_user_list)
    admin_actions = add_group(commands, "admin", "The admin web page's password.")
    add_command(admin_actions, "passwd", cmd_admin_passwd)
