"""What the CLI prints from stored, imported or received text reaches the admin's terminal as
visible escapes, never as terminal controls: no clear-screen, no OSC 52 clipboard write, no
bidi reordering, from `account list`, `account import --dry-run`, `user list`, `status`,
`totpd call` (whatever a hostile or buggy daemon answers) or an error line."""

import asyncio
import json
import time
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.enrol.test_migration import SECRET_A, account, export
from tests.helpers import UNPRINTABLE, run_totpd
from totpd import config as config_module
from totpd.otp import Account
from totpd.roster import ROSTER_FILE
from totpd.users import User

HOSTILE = "".join(UNPRINTABLE.values())
CLEAR_SCREEN = UNPRINTABLE["ESC clear screen"]
CLIPBOARD_WRITE = UNPRINTABLE["OSC 52 clipboard write"]


def assert_safe_for_a_terminal(output: str) -> None:
    """Every field of every line is printable: no control, format or separator character but
    the newlines and the tabs between columns."""
    for line in output.split("\n"):
        for column in line.split("\t"):
            assert column.isprintable(), repr(line)


def plant_directory(config_path: Path, label: str, callers: tuple[str, ...]) -> None:
    """A directory file as an older totpd, or someone with the state directory, left it."""
    state = config_module.load(config_path).paths.state_dir
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    accounts = [{**asdict(Account("github", "GitHub")), "label": label}]
    users = [{**asdict(User("alice", 1, "x", ("github",))), "callers": list(callers)}]
    document = {"version": 1, "accounts": accounts, "users": users}
    (state / ROSTER_FILE).write_text(json.dumps(document))


def test_account_import_dry_run_prints_no_terminal_controls(config_path: Path) -> None:
    issuer = quote(f"Evil{HOSTILE}Bank", safe="")
    uri = f"otpauth://totp/{issuer}:alice?secret=JBSWY3DPEHPK3PXP&issuer={issuer}"
    hostile_export = export(account(SECRET_A, f"bob{HOSTILE}", issuer=f"Evil{CLEAR_SCREEN}"))
    for text in (uri, hostile_export):
        shown = run_totpd(config_path, "account", "import", "--dry-run", stdin=text)
        assert shown.returncode == 0, shown.stderr
        assert_safe_for_a_terminal(shown.stdout + shown.stderr)
        assert "Evil" in shown.stdout


def test_account_list_and_user_list_print_no_terminal_controls(config_path: Path) -> None:
    plant_directory(config_path, f"Git{HOSTILE}Hub", (f"4477{CLIPBOARD_WRITE}",))
    for command in (("account", "list"), ("user", "list")):
        listed = run_totpd(config_path, *command)
        assert_safe_for_a_terminal(listed.stdout + listed.stderr)
        assert "github" in listed.stdout + listed.stderr


def test_status_prints_no_terminal_controls(config_path: Path) -> None:
    state = config_module.load(config_path).paths.state_dir
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = f"LIMITER/caller/{CLEAR_SCREEN}{CLIPBOARD_WRITE}/3/15/minute"
    record = {"op": "hit", "key": key, "at": time.time(), "ttl": 900}
    (state / "lockout.journal").write_text(json.dumps(record) + "\n")
    status = run_totpd(config_path, "status")
    assert status.returncode == 0, status.stderr
    assert_safe_for_a_terminal(status.stdout + status.stderr)
    assert "\\x1b[2J" in status.stdout  # shown, not obeyed


def test_an_error_line_prints_no_terminal_controls(config_path: Path, tmp_path: Path) -> None:
    image = tmp_path / f"{CLEAR_SCREEN}.png"
    failed = run_totpd(config_path, "account", "add", "github", "--qr", str(image))
    assert failed.returncode == 1
    assert_safe_for_a_terminal(failed.stdout + failed.stderr)
    assert "\\x1b[2J" in failed.stderr


async def test_totpd_call_prints_no_terminal_controls_from_a_hostile_daemon(
    aiohttp_server: AiohttpServer, config_path: Path
) -> None:
    said = f"<speak>{CLEAR_SCREEN}Welcome.{CLIPBOARD_WRITE} Please enter your PIN\u202e</speak>"

    async def answer(request: web.Request) -> web.Response:
        url = str(request.url.with_path("/webhooks/input/pin"))
        return web.json_response(
            [{"action": "talk", "text": said}, {"action": "input", "eventUrl": [url]}]
        )

    async def pin(request: web.Request) -> web.Response:
        return web.json_response([{"action": "talk", "text": f"<speak>{HOSTILE}</speak>"}])

    async def event(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/webhooks/answer", answer)
    app.router.add_post("/webhooks/input/pin", pin)
    app.router.add_post("/webhooks/event", event)
    server = await aiohttp_server(app)
    url = str(server.make_url("/")).rstrip("/")
    called = await asyncio.to_thread(
        run_totpd, config_path, "call", "--url", url, "--press", "123456"
    )
    assert called.returncode == 0, called.stderr
    assert_safe_for_a_terminal(called.stdout + called.stderr)
    assert "totpd: \\x1b[2J\\x1b[HWelcome.\\x1b]52;c;cm0gLXJmIH4K\\x07 Please" in called.stdout
