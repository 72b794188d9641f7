"""The admin page when the directory cannot be read or saved: a clear page, never a 500."""

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.admin.helpers import ADMIN_PASSWORD, EXAMPLE_URI, Clock
from totpd.admin import create_admin_app
from totpd.admin.password import AdminPassword
from totpd.services import Services

Client = TestClient[web.Request, web.Application]


async def _signed_in(aiohttp_client: AiohttpClient, services: Services) -> Client:
    AdminPassword(services.config.paths.state_dir, services.config.pins).set(ADMIN_PASSWORD)
    admin = await aiohttp_client(create_admin_app(services, clock=Clock()))
    page = await (await admin.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    response = await admin.post("/login", data={"csrf": token[1], "password": ADMIN_PASSWORD})
    assert response.status == 200
    return admin


def _unreadable_as_a_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _unreadable_as_garbage(path: Path) -> None:
    path.write_bytes(b"\x00 not JSON")


@pytest.mark.parametrize("damage", [_unreadable_as_a_directory, _unreadable_as_garbage])
async def test_the_home_page_says_the_directory_cannot_be_read(
    aiohttp_client: AiohttpClient, services: Services, damage: Callable[[Path], None]
) -> None:
    admin = await _signed_in(aiohttp_client, services)
    roster = services.config.paths.state_dir / "directory.json"
    damage(roster)
    response = await admin.get("/")
    page = await response.text()
    assert response.status == 503
    assert "The directory cannot be read" in page
    assert str(roster) in page
    assert "Traceback" not in page


@pytest.fixture
def immutable_roster(services: Services) -> Iterator[Path]:
    """directory.json, for the test to make immutable; mutable again afterwards."""
    roster = services.config.paths.state_dir / "directory.json"
    yield roster
    subprocess.run(["chattr", "-i", str(roster)], check=False)


@pytest.mark.root  # chattr +i
async def test_an_enrolment_the_directory_cannot_take_is_a_clear_503(
    aiohttp_client: AiohttpClient, services: Services, immutable_roster: Path
) -> None:
    admin = await _signed_in(aiohttp_client, services)
    page = await (await admin.get("/")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    before = immutable_roster.read_bytes()
    subprocess.run(["chattr", "+i", str(immutable_roster)], check=True)
    response = await admin.post("/enrol/text", data={"csrf": token[1], "uri": EXAMPLE_URI})
    page = await response.text()
    assert response.status == 503
    assert "Not enrolled" in page
    assert "Operation not permitted" in page
    assert immutable_roster.read_bytes() == before
