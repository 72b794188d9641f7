"""`totpd user ...` and `totpd admin passwd`: who may call in, with which PIN, to hear what;
and the admin page's password."""

import argparse
from collections.abc import Callable
from dataclasses import replace

from totpd.cli.parser import Commands, add_command
from totpd.cli.prompt import comma_list, read_secret
from totpd.config import Config
from totpd.errors import RosterError
from totpd.pins import PinHasher
from totpd.roster import Roster, RosterFile
from totpd.users import MAX_ACCOUNTS_PER_USER, User


def cmd_user_add(args: argparse.Namespace, config: Config) -> int:
    """Add a user with a PIN (from stdin, or typed twice) and the accounts they may hear."""
    accounts = _account_names(args.accounts)
    pin_hash = PinHasher(config.pins).hash(read_secret("PIN: ", confirm=True))

    def change(current: Roster) -> Roster:
        if args.name in current.users:
            raise RosterError(f"user {args.name!r} already exists")
        number = args.number or current.next_user_number()
        callers = comma_list(args.callers or "")
        return current.with_user(User(args.name, number, pin_hash, accounts, callers))

    added = RosterFile(config.paths.state_dir).update(change).users[args.name]
    print(f"added user {added.name} (keypad number {added.number})")
    return 0


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
    accounts = _account_names(args.accounts)
    _change_user(config, args.name, lambda u: replace(u, accounts=accounts))
    print(f"{args.name} now hears: {', '.join(accounts) or 'nothing'}")
    return 0


def cmd_user_list(args: argparse.Namespace, config: Config) -> int:
    """List users: name, keypad number, accounts, caller allowlist."""
    for user in RosterFile(config.paths.state_dir).current().users.values():
        callers = ",".join(user.callers) or "any"
        print(f"{user.name}\t{user.number}\t{','.join(user.accounts) or '-'}\t{callers}")
    return 0


def _change_user(config: Config, name: str, change: Callable[[User], User | None]) -> None:
    def apply(current: Roster) -> Roster:
        user = current.users.get(name)
        if user is None:
            raise RosterError(f"no user {name!r}")
        changed = change(user)
        if changed is None:
            return Roster(current.accounts, {n: u for n, u in current.users.items() if n != name})
        return current.with_user(changed)

    RosterFile(config.paths.state_dir).update(apply)


def _account_names(text: str) -> tuple[str, ...]:
    """The comma-separated account names of --accounts: at most one per keypad key."""
    names = comma_list(text)
    if len(names) > MAX_ACCOUNTS_PER_USER:
        raise RosterError(f"a user has at most {MAX_ACCOUNTS_PER_USER} accounts (one key each)")
    return names


def cmd_admin_passwd(args: argparse.Namespace, config: Config) -> int:
    """Set the admin web page's password (from stdin, or typed twice)."""
    from totpd.admin.password import AdminPassword

    password = read_secret("Admin page password: ", confirm=True)
    AdminPassword(config.paths.state_dir, config.pins).set(password)
    print("admin page password set; signed-in sessions end at their next request")
    return 0


def register(commands: Commands) -> None:
    """Add `user` and `admin` and their actions to the parser."""
    user = add_command(commands, "user", cmd_user_list)
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = add_command(actions, "add", cmd_user_add)
    add.add_argument("name")
    add.add_argument("--accounts", required=True, help="comma-separated account names")
    add.add_argument("--number", type=int, help="keypad number (default: the next free)")
    add.add_argument("--callers", help="comma-separated caller numbers allowed (default any)")
    add_command(actions, "passwd", cmd_user_passwd).add_argument("name")
    add_command(actions, "remove", cmd_user_remove).add_argument("name")
    assign = add_command(actions, "assign", cmd_user_assign)
    assign.add_argument("name")
    assign.add_argument("--accounts", required=True, help="comma-separated account names")
    add_command(actions, "list", cmd_user_list)
    admin = add_command(commands, "admin", cmd_admin_passwd)
    admin_actions = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    add_command(admin_actions, "passwd", cmd_admin_passwd)
