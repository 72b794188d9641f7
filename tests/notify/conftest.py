"""Fixtures for the notification tests: the two servers, and URL files pointing at them."""

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from tests.notify.servers import Ntfy, Smtp

TOKEN = "tk_k3yb0ardc4tn0t1fyt0ken"  # the test server's access token
TOPIC = "totpd-alerts-9f2c"  # on ntfy.sh a topic is itself a password


@pytest.fixture
def ntfy() -> Ntfy:
    """An ntfy publish endpoint that wants TOKEN (serve it with `ntfy_server`)."""
    return Ntfy(token=TOKEN)


@pytest.fixture
async def ntfy_server(aiohttp_server: AiohttpServer, ntfy: Ntfy) -> TestServer:
    """`ntfy` on aiohttp's test server, on loopback."""
    return await aiohttp_server(ntfy.app())


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """aiosmtpd listening on loopback."""
    with Smtp() as server:
        yield server


def ntfy_url(server: TestServer, topic: str = TOPIC, token: str = TOKEN) -> str:
    """The Apprise URL publishing to `topic` on `server` with an access token."""
    return f"ntfy://{token}@127.0.0.1:{server.port}/{topic}"


def write_urls(tmp_path: Path, *lines: str, mode: int = 0o600) -> Path:
    """A notify.urls file holding `lines`, with `mode`."""
    path = tmp_path / "notify.urls"
    path.write_text("".join(f"{line}\n" for line in lines))
    path.chmod(mode)
    return path


def notify_section(path: Path) -> str:
    """The [notify] section naming `path`."""
    return f'[notify]\nurls_file = "{path}"\n'


@pytest.fixture
def totpd_log() -> Iterator[io.StringIO]:
    """Everything that reaches totpd's own log handler, at every level.

    The daemon's handler sits on the root logger (totpd.systemd.configure_logging); so does
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
