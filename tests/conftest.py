"""Fixtures every test folder may use, and what each test marker needs.

Helpers are imported by name from tests/helpers.py and tests/servers.py, never from here.
"""

import ctypes.util
import io
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from tests.helpers import (
    CHROMIUM,
    FAST_ARGON2,
    SIGNATURE_SECRET,
    Client,
    Vonage,
    WebhookServer,
    enrol_demo,
    free_port,
    wait_for_port,
    write_config,
)
from tests.servers import Line, Opener, RedisServer, Replica, lockout_config, new_session
from totpd import config as config_module
from totpd.config import Config
from totpd.services import Services, open_services

# What each marker's tests need, and what provides it. A test whose need is missing fails
# (a skip would hide it); deselect such tests instead, e.g. `pytest -m "not root"`.
REQUIREMENTS: dict[str, tuple[Callable[[], bool], str]] = {
    "redis": (lambda: shutil.which("redis-server") is not None, "redis-server (scripts/setup)"),
    "browser": (lambda: Path(CHROMIUM).exists(), "Debian's chromium (scripts/setup)"),
    "root": (lambda: os.geteuid() == 0, "root"),
    "systemd_creds": (
        lambda: os.geteuid() == 0 and shutil.which("systemd-creds") is not None,
        "systemd-creds, as root (it seals with the host key; scripts/setup)",
    ),
    "secret_service": (
        lambda: all(shutil.which(t) for t in ("dbus-run-session", "gnome-keyring-daemon")),
        "dbus and gnome-keyring (scripts/setup)",
    ),
    "seccomp": (
        lambda: bool(ctypes.util.find_library("seccomp") and shutil.which("systemd-analyze")),
        "libseccomp and systemd-analyze (scripts/setup installs systemd)",
    ),
    "vm": (
        lambda: (
            os.geteuid() == 0
            and all(
                shutil.which(t) for t in ("qemu-system-x86_64", "qemu-img", "swtpm", "mmdebstrap")
            )
        ),
        "root, QEMU, swtpm and mmdebstrap (tests/vm/setup-host, which make test-vm runs)",
    ),
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a marked test at once, with what to install, when what it needs is missing."""
    for marker in item.iter_markers():
        requirement = REQUIREMENTS.get(marker.name)
        if requirement is not None and not requirement[0]():
            pytest.fail(
                f"needs {requirement[1]}; or deselect: pytest -m 'not {marker.name}'",
                pytrace=False,
            )


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


@pytest.fixture
def services(config: Config) -> Iterator[Services]:
    """The daemon's services over the test config, with alice enrolled."""
    enrol_demo(config)
    opened = open_services(config)
    yield opened
    opened.close()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, services: Services) -> Client:
    """An HTTP client talking to the webhook listener on aiohttp's test server."""
    return await aiohttp_client(WebhookServer(services))


@pytest.fixture
def caller(client: Client) -> Vonage:
    """A signed-request builder for one call."""
    return Vonage(client)


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
        with (home / "daemon.log").open("wb") as log:  # the child keeps its own copy
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


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server for one test (tests using it are marked `redis`)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    """A list to add Replica objects to; every one still running is stopped at the end."""
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()


@pytest.fixture
async def open_app(tmp_path: Path) -> AsyncIterator[Opener]:
    """Start the webhook listener on aiohttp's test server with a given `[lockout]` section
    (and `extra` config text), alice enrolled; returns (services, line). Started again, it
    keeps the state directory: a restart."""
    opened: list[Services] = []
    servers: list[WebhookServer] = []
    session = new_session()

    async def start(
        extra: str = "", pins: str = FAST_ARGON2, **limits: str
    ) -> tuple[Services, Line]:
        path = write_config(tmp_path, lockout_config(**limits) + extra, pins=pins)
        config = config_module.load(path)
        config.paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not (config.paths.state_dir / "directory.json").exists():
            enrol_demo(config, ("github",))
        services = open_services(config)
        opened.append(services)
        server = WebhookServer(services)
        servers.append(server)
        await server.start_server()
        return services, Line(session, str(server.make_url("")).rstrip("/"))

    yield start
    await session.close()
    for server in servers:
        await server.close()
    for services in opened:
        services.close()


@pytest.fixture
def totpd_log() -> Iterator[io.StringIO]:
    """Everything that reaches totpd's own log handler, at every level.

    The daemon's handler sits on the root logger (totpd.logs.configure_logging); so does
    this one. (caplog would not do: pytest also hooks loggers that do not propagate.)
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)
