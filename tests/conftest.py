"""Shared fixtures: a config in tmp_path, an enrolled demo user, signed requests, a client."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient
from pytest_aiohttp import AiohttpClient

from totpd import config as config_module
from totpd import vonage
from totpd.config import Config
from totpd.enrol import Enrolment
from totpd.enrol.commit import store_enrolments
from totpd.otp import Account
from totpd.pins import PinHasher
from totpd.roster import RosterFile
from totpd.secrets import open_store
from totpd.services import Services, open_services
from totpd.users import User
from totpd.web import create_server

Client = TestClient[web.BaseRequest, None]  # a client of the webhook listener
SIGNATURE_SECRET = "test-signature-secret-0123456789abcdef"
APPLICATION_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
PUBLIC_URL = "https://totpd.example.test"
PIN = "482916"
GITHUB_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
GMAIL_SEED = "KVKFKRCPNZQUYMLXOVYDSQKJKZDTSRLD"
CALLER = "447700900001"
FAST_ARGON2 = """
[pins]
argon2_time_cost = 1
argon2_memory_kib = 8192
argon2_parallelism = 1
"""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(tmp_path: Path, extra: str = "", **server: Any) -> Path:
    """A config file in tmp_path with fast Argon2 and the test application id."""
    listen = server.get("listen", "127.0.0.1:8080")
    metrics = server.get("metrics", "127.0.0.1:9464")
    text = f"""
[server]
listen = "{listen}"
public_url = "{PUBLIC_URL}"

[vonage]
application_id = "{APPLICATION_ID}"

[metrics]
listen = "{metrics}"

[paths]
state_dir = "{tmp_path / "state"}"
{FAST_ARGON2}
{extra}
"""
    path = tmp_path / "totpd.toml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _signature_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config_module.SIGNATURE_SECRET_ENV, SIGNATURE_SECRET)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A config file for one test."""
    return write_config(tmp_path)


@pytest.fixture
def config(config_path: Path) -> Config:
    """The parsed config, with its state directory created."""
    loaded = config_module.load(config_path)
    loaded.paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return loaded


def enrol_demo(config: Config, accounts: tuple[str, ...] = ("github",)) -> None:
    """Enrol GitHub and Gmail, and user `alice` (PIN 482916) who hears `accounts`."""
    enrolments = [
        Enrolment(Account("github", "GitHub"), GITHUB_SEED),
        Enrolment(Account("gmail", "Gmail"), GMAIL_SEED),
    ]
    store_enrolments(enrolments, open_store(config), RosterFile(config.paths.state_dir))
    pin_hash = PinHasher(config.pins).hash(PIN)
    RosterFile(config.paths.state_dir).update(
        lambda d: d.with_user(User("alice", 1, pin_hash, accounts))
    )


@pytest.fixture
def services(config: Config) -> Iterator[Services]:
    """The daemon's services over the test config, with alice enrolled."""
    enrol_demo(config)
    opened = open_services(config)
    yield opened
    opened.close()


class WebhookServer(BaseTestServer):
    """aiohttp's test server around the daemon's own webhook listener."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services

    async def _make_runner(self, **kwargs: Any) -> web.ServerRunner:
        return web.ServerRunner(create_server(self.services), **kwargs)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, services: Services) -> Client:
    """An HTTP client talking to the webhook listener on aiohttp's test server."""
    return await aiohttp_client(WebhookServer(services))


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
            "/webhooks/answer", {"from": caller, "to": "447700900999", "uuid": self.uuid}
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


@pytest.fixture
def caller(client: Client) -> Vonage:
    """A signed-request builder for one call."""
    return Vonage(client)


def spoken(ncco: list[dict[str, Any]]) -> str:
    """Everything the NCCO says, as plain text."""
    from totpd.emulator import plain_text

    return " ".join(plain_text(a["text"]) for a in ncco if a["action"] == "talk")


def codes_near_now(seed: str) -> set[str]:
    """The codes of the previous, current and next period: what a correct reader may say now."""
    import pyotp

    totp = pyotp.TOTP(seed)
    now = time.time()
    return {totp.at(now - 30), totp.at(now), totp.at(now + 30)}


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


def wait_for_port(port: int, timeout_s: float = 15.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., tuple[Path, int]]]:
    """Start `totpd serve` processes; each call returns (config path, webhook port)."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(extra: str = "", enrol: bool = True) -> tuple[Path, int]:
        port, metrics_port = free_port(), free_port()
        home = tmp_path / f"daemon{len(processes)}"
        home.mkdir()
        path = write_config(
            home, extra, listen=f"127.0.0.1:{port}", metrics=f"127.0.0.1:{metrics_port}"
        )
        if enrol:
            loaded = config_module.load(path)
            loaded.paths.state_dir.mkdir(mode=0o700, parents=True)
            enrol_demo(loaded, ("github", "gmail"))
        log = (home / "daemon.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "totpd", "--config", str(path), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        wait_for_port(port)
        return path, port

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)
