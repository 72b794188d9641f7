"""The running service: `serve`, `check-config`, `call` (the Vonage emulator), and the
lockouts it keeps (`status`, `unlock`)."""

import argparse
import logging

from totpd.config import Config
from totpd.directory import DirectoryFile
from totpd.secrets import open_store


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    """Run the daemon."""
    from totpd.daemon import serve
    from totpd.systemd import configure_logging

    configure_logging(logging.INFO)  # journald fields under systemd, text on a terminal
    serve(config)
    return 0


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    """Validate the config, open the secret store and the directory, read the lockouts, check
    the notification URLs."""
    from totpd.notify import load_targets
    from totpd.services import read_lockouts

    open_store(config).signature_secret(config)  # raises when no route has one
    directory = DirectoryFile(config.paths.state_dir).current()
    locked = sum(state.locked for state in read_lockouts(config))  # Redis too, when configured
    storage = config.lockout.storage.partition(":")[0]  # the scheme: the URL may hold a password
    targets = load_targets(config)  # counted and named by service: the URLs hold tokens
    services = ", ".join(target.service for target in targets)
    notify = f"{len(targets)} notification targets ({services})" if targets else "notifications off"
    print(
        f"{config.source}: OK ({len(directory.accounts)} accounts, {len(directory.users)} users,"
        f" webhooks on {config.server.listen}, public URL {config.server.public_url},"
        f" lockout storage {storage} with {locked} lockouts,"
        f" {notify})"
    )
    return 0


def cmd_call(args: argparse.Namespace, config: Config) -> int:
    """Walk one call through a running daemon, as Vonage would."""
    from totpd.emulator import Line, place_call, scripted_keypad, terminal_keypad

    secret = open_store(config).signature_secret(config)
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
