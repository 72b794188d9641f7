"""`totpd status` and `unlock`: the PIN failures the lockout keeps, and clearing them.

Both are safe while the daemon runs: it replays the embedded journal before every PIN, and
Redis is shared.
"""

import argparse

from totpd.cli.parser import Commands, add_command, echo
from totpd.config import Config
from totpd.errors import TotpdError
from totpd.lockout_windows import CallerClass, Layer, LockState


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    """Show PIN failures on record and what is locked out, until when."""
    from totpd.services import read_lockouts

    states = read_lockouts(config)
    for state in states:
        echo(state.describe())
    for name in _frozen(states):
        echo(f"{name}'s codes are read again after: totpd unlock --user {name}")
    if not any(s.locked for s in states):
        echo("nothing is locked" if states else "no PIN failures on record; nothing is locked")
    return 0


def cmd_unlock(args: argparse.Namespace, config: Config) -> int:
    """Clear lockouts: every window, or only --caller NUMBER's, --user NAME's (and a freeze
    of NAME's codes) and/or one class's global window."""
    from totpd.services import clear_lockouts

    global_class = CallerClass(args.global_class) if args.global_class else None
    if args.admin and (args.caller is not None or args.user is not None or global_class):
        raise TotpdError("--admin clears the admin page's windows alone: give it by itself")
    cleared = clear_lockouts(config, args.caller, args.user, global_class, args.admin)
    for state in cleared:
        echo(f"cleared {state.describe()}")
    for name in _frozen(cleared):
        echo(f"{name}'s codes can be read again")
    echo(f"unlocked ({len(cleared)} window(s) had failures on record)")
    return 0


def _frozen(states: list[LockState]) -> list[str]:
    """The users a duress PIN froze, among `states`."""
    return [s.key for s in states if s.layer is Layer.FROZEN]


def register(commands: Commands) -> None:
    """Add `status` and `unlock` to the parser."""
    add_command(commands, "status", cmd_status)
    unlock = add_command(commands, "unlock", cmd_unlock)
    unlock.add_argument(
        "--caller",
        metavar="NUMBER",
        help='only this caller: a phone number (+44 7700 900123) or "withheld"',
    )
    unlock.add_argument(
        "--user",
        metavar="NAME",
        help="only this user (both classes, and a freeze by the duress PIN)",
    )
    unlock.add_argument(
        "--global",
        dest="global_class",
        choices=[c.value for c in CallerClass],
        help="only the global window of callers on (listed) or off (unlisted) an allowlist",
    )
    unlock.add_argument(
        "--admin", action="store_true", help="only the admin page's sign-in windows"
    )
