"""What the tests share, imported by name (fixtures are in conftest.py files).

- the demo installation: constants, a config in tmp_path, alice enrolled, `totpd` as a process;
- webhooks: aiohttp's test server around the daemon's listener, and requests signed as Vonage
  signs them;
- ports, and small readers: journald datagrams, systemd unit files.

A redis-server of our own, `totpd serve` replicas and calls placed to them over real HTTP are
in tests/servers.py; helpers for the admin page alone are in tests/admin/helpers.py.
"""

import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyotp
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient

from totpd import vonage
from totpd.config import Config, LockoutConfig
from totpd.emulator import plain_text
from totpd.enrol import Enrolment
from totpd.enrol.commit import store_enrolments
from totpd.lockout import Lockout, global_window
from totpd.lockout_windows import Admission, CallerClass
from totpd.otp import Account
from totpd.pins import PinHasher
from totpd.roster import RosterFile
from totpd.secrets import open_store
from totpd.services import Services
from totpd.state.journal import JournalWindows
from totpd.users import User
from totpd.web import create_server

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"  # Debian's, for the admin page's browser tests
DEPLOY = REPO / "deploy"

SIGNATURE_SECRET = "test-signature-secret-0123456789abcdef"
APPLICATION_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
PUBLIC_URL = "https://totpd.example.test"
PIN = "48291673"
WRONG_PIN = "135791"
GITHUB_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
GMAIL_SEED = "KVKFKRCPNZQUYMLXOVYDSQKJKZDTSRLD"
CALLER = "447700900001"
CALLED = "447700900999"
FAST_ARGON2 = """
[pins]
argon2_time_cost = 1
argon2_memory_kib = 8192
argon2_parallelism = 1
"""

Client = TestClient[web.BaseRequest, None]  # a client of the webhook listener


# The demo installation ----------------------------------------------------------------------
def write_config(tmp_path: Path, extra: str = "", pins: str = FAST_ARGON2, **server: Any) -> Path:
    """A config file in tmp_path with fast Argon2 (or the `[pins]` section `pins`) and the
    test application id.

    `extra` is appended (whole sections); `server_extra` goes into [server], `vonage_extra`
    into [vonage].
    """
    listen = server.get("listen", "127.0.0.1:8080")
    metrics = server.get("metrics", "127.0.0.1:9464")
    text = f"""
[server]
listen = "{listen}"
public_url = "{PUBLIC_URL}"
{server.get("server_extra", "")}

[vonage]
application_id = "{APPLICATION_ID}"
{server.get("vonage_extra", "")}

[metrics]
listen = "{metrics}"

[paths]
state_dir = "{tmp_path / "state"}"
{pins}
{extra}
"""
    path = tmp_path / "totpd.toml"
    path.write_text(text)
    return path


def enrol_demo(config: Config, accounts: tuple[str, ...] = ("github",)) -> None:
    """Enrol GitHub and Gmail, and user `alice` (PIN 48291673) who hears `accounts`."""
    enrolments = [
        Enrolment(Account("github", "GitHub"), GITHUB_SEED),
        Enrolment(Account("gmail", "Gmail"), GMAIL_SEED),
    ]
    store_enrolments(enrolments, open_store(config), RosterFile(config.paths.state_dir))
    pin_hash = PinHasher(config.pins).hash(PIN)
    RosterFile(config.paths.state_dir).update(
        lambda r: r.with_user(User("alice", 1, pin_hash, accounts))
    )


def run_totpd(
    config_path: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `totpd` command as a separate process, as a sysadmin would."""
    return subprocess.run(
        [sys.executable, "-m", "totpd", "--config", str(config_path), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def codes_near_now(seed: str) -> set[str]:
    """The codes of the previous, current and next period: what a correct reader may say now."""
    totp = pyotp.TOTP(seed)
    now = time.time()
    return {totp.at(now - 30), totp.at(now), totp.at(now + 30)}


def open_lockout(state_dir: Path, **limits: str) -> Lockout:
    """A Lockout over the journal in `state_dir`, as the daemon (or the CLI) opens it."""
    config = LockoutConfig(**limits)
    state_dir.mkdir(mode=0o700, exist_ok=True)
    return Lockout(config, JournalWindows(state_dir, *global_window(config)))


async def wrong_pins(
    lockout: Lockout,
    caller: str,
    user: str,
    count: int,
    caller_class: CallerClass = CallerClass.UNLISTED,
) -> list[Admission]:
    """`count` wrong PINs in a row: admitted ones are recorded as failures, as the web layer
    does."""
    outcomes = []
    for _ in range(count):
        admission = await lockout.admit(caller, user, caller_class)
        if admission.refused_by is None:
            await lockout.record_failure(admission)
        outcomes.append(admission)
    return outcomes


def checked(outcomes: Sequence[Admission]) -> int:
    """How many of these attempts would have reached Argon2."""
    return sum(1 for a in outcomes if a.refused_by is None)


# Webhooks on aiohttp's test server -----------------------------------------------------------
class WebhookServer(BaseTestServer):
    """aiohttp's test server around the daemon's own webhook listener."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services

    async def _make_runner(self, **kwargs: Any) -> web.ServerRunner:
        return web.ServerRunner(create_server(self.services), **kwargs)


class Vonage:
    """Builds webhook requests as Vonage sends them (signed), or deliberately not."""

    def __init__(self, client: Client, secret: str = SIGNATURE_SECRET) -> None:
        self.client = client
        self.secret = secret.encode()
        self.uuid = "call-0001"

    def token(self, body: bytes, **overrides: Any) -> str:
        """A signed Authorization header for `body`."""
        now = overrides.pop("now", time.time())
        return vonage.sign_webhook(body, self.secret, now, overrides.pop("app", APPLICATION_ID))

    async def post(
        self, path: str, fields: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """POST `fields` as JSON, signed unless `headers` are given."""
        body = json.dumps(fields).encode()
        sent = headers if headers is not None else {"Authorization": self.token(body)}
        response = await self.client.post(path, data=body, headers=sent)
        return response.status, await response.json(content_type=None)

    async def answer(self, caller: str = CALLER) -> tuple[int, Any]:
        """The answer webhook for this call."""
        return await self.post(
            "/webhooks/answer", {"from": caller, "to": CALLED, "uuid": self.uuid}
        )

    async def press(self, step: str, digits: str, **extra: Any) -> tuple[int, Any]:
        """An input webhook for this call: the caller typed `digits` at `step`."""
        fields = {
            "dtmf": {"digits": digits, "timed_out": digits == ""},
            "uuid": self.uuid,
            "from": CALLER,
            **extra,
        }
        return await self.post(f"/webhooks/input/{step}", fields)


def spoken(ncco: list[dict[str, Any]]) -> str:
    """Everything the NCCO says, as plain text."""
    return " ".join(plain_text(a["text"]) for a in ncco if a["action"] == "talk")


# HTTP that aiohttp's parser refuses, one of each kind (each a whole request, Host included
# where the point is something else).
MALFORMED_HTTP = {
    "not_http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    "bad_method": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_version": b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    "missing_host": b"GET / HTTP/1.1\r\n\r\n",
    "bad_header_name": b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
    "header_without_colon": b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nX-A a\r\n\r\n",
    "control_in_header": b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "space_before_colon": b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nX-A : x\r\n\r\n",
    "two_lengths": (
        b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nx"
    ),
    "length_and_chunked": (
        b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "negative_length": b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "bad_chunk_size": (
        b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nabc\r\n"
    ),
    "unknown_transfer_encoding": (
        b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
    ),
    "long_request_line": b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "long_header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n",
    "many_headers": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n",
    "bad_url": b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",
}


# Ports ---------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float = 15.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


# Small readers -------------------------------------------------------------------------------
def parse_journal_datagram(data: bytes) -> dict[str, str]:
    """journald's native protocol: KEY=value lines, or KEY\\n<le64 length><bytes>\\n."""
    fields: dict[str, str] = {}
    while data:
        line, _, rest = data.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            data = rest
        else:
            (size,) = struct.unpack("<Q", rest[:8])
            key, value, data = line, rest[8 : 8 + size], rest[9 + size :]
        fields[key.decode()] = value.decode()
    return fields


def unit_directives(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment in a systemd unit file, repeats included."""
    found = []
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def unit_values(path: Path, key: str) -> list[str]:
    """Every value of `key` in the [Service] or [Socket] section of a unit file, in order."""
    return [v for s, k, v in unit_directives(path) if k == key and s in ("Service", "Socket")]


# Hostile text ---------------------------------------------------------------------------------
# Characters a hostile QR code, export or daemon may hide in text totpd keeps, speaks or prints,
# one or two of each class. None may survive enrolment, reach a spoken menu, or reach the
# admin's terminal as itself.
UNPRINTABLE = {
    "NUL": "\x00",
    "BEL": "\x07",
    "backspace": "\x08",
    "tab": "\t",
    "line feed": "\n",
    "carriage return": "\r",
    "ESC clear screen": "\x1b[2J\x1b[H",
    "OSC 52 clipboard write": "\x1b]52;c;cm0gLXJmIH4K\x07",
    "DEL": "\x7f",
    "C1 next line": "\x85",
    "C1 CSI": "\x9b2J",
    "C1 OSC string": "\x9d52;c;cm0gLXJmIH4K\x9c",
    "bidi embeddings": "\u202a\u202b\u202c",
    "bidi overrides": "\u202d\u202e",
    "bidi isolates": "\u2066\u2067\u2068\u2069",
    "zero width": "\u200b\u200c\u200d\u2060",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "line and paragraph separators": "\u2028\u2029",
    "no-break space": "\u00a0",
    "noncharacter": "\uffff",
    "private use": "\ue000",
    "tag characters": "\U000e0041\U000e007f",
}
