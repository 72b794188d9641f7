"""The admin page when the directory cannot be read or saved: a clear page, never a 500."""

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.admin.helpers import EXAMPLE_URI, AdminClient
from totpd.services import Services


def _unreadable_as_a_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _unreadable_as_garbage(path: Path) -> None:
    path.write_bytes(b"\x00 not JSON")


@pytest.mark.parametrize("damage", [_unreadable_as_a_directory, _unreadable_as_garbage])
async def test_the_home_page_says_the_directory_cannot_be_read(
    signed_in_admin: AdminClient, services: Services, damage: Callable[[Path], None]
) -> None:
    roster = services.config.paths.state_dir / "directory.json"
    damage(roster)
    response = await signed_in_admin.get("/")
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
    signed_in_admin: AdminClient, services: Services, immutable_roster: Path
) -> None:
    page = await (await signed_in_admin.get("/")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    before = immutable_roster.read_bytes()
    subprocess.run(["chattr", "+i", str(immutable_roster)], check=True)
    response = await signed_in_admin.post(
        "/enrol/text", data={"csrf": token[1], "uri": EXAMPLE_URI}
    )
    page = await response.text()
    assert response.status == 503
    assert "Not enrolled" in page
    assert "Operation not permitted" in page
    assert immutable_roster.read_bytes() == before
