"""`totpd serve`, `check-config` and `call` (the Vonage emulator): the running service."""

import argparse
import logging

from totpd.cli.parser import Commands, add_command
from totpd.config import Config
from totpd.roster import RosterFile
from totpd.secrets import open_store


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    """Run the daemon."""
    from totpd.daemon import serve
    from totpd.logs import configure_logging

    configure_logging(logging.INFO)  # journald fields under systemd, text on a terminal
    serve(config)
    return 0


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    """Validate the config, open the secret store and the directory, read the lockouts, check
    the notification URLs."""
    from totpd.notify import load_targets
    from totpd.services import read_lockouts

    open_store(config).signature_secret(config)  # raises when no route has one
    roster = RosterFile(config.paths.state_dir).current()
    locked = sum(state.locked for state in read_lockouts(config))  # Redis too, when configured
    storage = config.lockout.storage.partition(":")[0]  # the scheme: the URL may hold a password
    targets = load_targets(config)  # counted and named by service: the URLs hold tokens
    services = ", ".join(target.service for target in targets)
    notify = f"{len(targets)} notification targets ({services})" if targets else "notifications off"
    print(
        f"{config.source}: OK ({len(roster.accounts)} accounts, {len(roster.users)} users,"
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


def register(commands: Commands) -> None:
    """Add `serve`, `check-config` and `call` to the parser."""
    add_command(commands, "serve", cmd_serve)
    add_command(commands, "check-config", cmd_check_config)
    call = add_command(commands, "call", cmd_call)
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
