"""Fixtures for the admin page tests: the page on a real loopback port, and headless Chromium.

The page runs in the test's event loop on aiohttp's test server (a real TCP listener), or inside
a real `totpd serve` process; Chromium is Debian's, driven by Playwright.
"""

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, Playwright, async_playwright
from pytest_aiohttp import AiohttpClient, AiohttpServer

from tests.admin.helpers import (
    ADMIN_PASSWORD,
    CHROMIUM_ARGS,
    AdminClient,
    AdminPage,
    BrowserFactory,
    Clock,
)
from tests.helpers import CHROMIUM
from totpd.admin import create_admin_app
from totpd.admin.password import AdminPassword
from totpd.services import Services


@pytest.fixture
async def admin_page(aiohttp_server: AiohttpServer, services: Services) -> AdminPage:
    """The admin page over the test services (alice, GitHub, Gmail), password already set."""
    AdminPassword(services.config.paths.state_dir, services.config.pins).set(ADMIN_PASSWORD)
    clock = Clock()
    server = await aiohttp_server(create_admin_app(services, clock=clock))
    return AdminPage(server, services, clock)


@pytest.fixture
async def signed_in_admin(aiohttp_client: AiohttpClient, services: Services) -> AdminClient:
    """A client of the admin page (in the test's loop), signed in."""
    AdminPassword(services.config.paths.state_dir, services.config.pins).set(ADMIN_PASSWORD)
    client = await aiohttp_client(create_admin_app(services, clock=Clock()))
    form = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    signed_in = await client.post("/login", data={"csrf": token[1], "password": ADMIN_PASSWORD})
    assert signed_in.status == 200
    return client


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    """Playwright's driver, for this test."""
    async with async_playwright() as driver:
        yield driver


@pytest.fixture
async def launch(playwright: Playwright, tmp_path: Path) -> AsyncIterator[BrowserFactory]:
    """Start headless Chromium with a new, empty profile; `extra_args` add switches."""
    contexts: list[BrowserContext] = []

    async def start(extra_args: tuple[str, ...] = (), javascript: bool = True) -> BrowserContext:
        profile = tmp_path / f"chromium-profile-{len(contexts)}"
        profile.mkdir()
        context = await playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, *extra_args],
            java_script_enabled=javascript,
            viewport={"width": 1280, "height": 1000},
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield start
    for context in contexts:
        await context.close()


@pytest.fixture
async def browser(launch: BrowserFactory) -> Page:
    """One page in a fresh headless Chromium."""
    context = await launch()
    return await context.new_page()
