"""Fixtures for the notification tests: the two servers, and URL files pointing at them."""

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
