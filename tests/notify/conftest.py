"""Fixtures for the notification tests: the two servers, and URL files pointing at them."""

import io
import logging
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from tests.notify.servers import TOKEN, Ntfy, Smtp


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
