"""`totpd status` and `unlock`: the PIN failures the lockout keeps, and clearing them.

Both are safe while the daemon runs: it replays the embedded journal before every PIN, and
Redis is shared.
"""

import argparse

from totpd.cli.parser import Commands, add_command
from totpd.config import Config


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


def register(commands: Commands) -> None:
    """Add `status` and `unlock` to the parser."""
    add_command(commands, "status", cmd_status)
    unlock = add_command(commands, "unlock", cmd_unlock)
    unlock.add_argument("--caller", metavar="NUMBER", help='only this caller ("withheld" too)')
    unlock.add_argument("--user", metavar="NAME", help="only this user")
