"""Backup import on the admin page: real HTTP through aiohttp, and real Chromium.

Same files, same refusals and same all-or-nothing as `totpd account import --file`; the
passphrase never comes back in a page.
"""

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import FormData
from playwright.async_api import Page

from tests.admin.helpers import ARTIFACTS, AdminClient, AdminPage, sign_in
from tests.admin.test_browser import NOTICE
from tests.admin.test_http import admin, csrf_of
from tests.admin.test_http import sign_in as sign_in_over_http
from tests.enrol import backup_writers as write
from tests.enrol.backup_writers import PASSPHRASE, SAMPLES
from tests.enrol.test_backups import _aegis_slot, tampered_twofas
from totpd.services import Services

__all__ = ["admin"]  # the fixture, used by name
BEFORE = ["github", "gmail"]  # the test services' accounts
NEW = SAMPLES[1:]  # all but GitHub, which the test services hold already


def state_files(services: Services) -> dict[str, bytes]:
    """The state directory's files but the lockout journal (which signing in writes to)."""
    state = services.config.paths.state_dir
    files = [p for p in sorted(state.iterdir()) if p.is_file() and "lockout" not in p.name]
    return {p.name: p.read_bytes() for p in files}


async def post_backup(
    admin: AdminClient, raw: bytes, passphrase: str = PASSPHRASE, **fields: str
) -> tuple[int, str]:
    """Sign in, post `raw` as the backup file; the status and the page that answers."""
    await sign_in_over_http(admin)
    form = FormData()
    form.add_field("csrf", csrf_of(await (await admin.get("/")).text()))
    form.add_field("backup", raw, filename="backup", content_type="application/octet-stream")
    form.add_field("passphrase", passphrase)
    for key, value in fields.items():
        form.add_field(key, value)
    response = await admin.post("/enrol/backup", data=form, allow_redirects=False)
    return response.status, await response.text()


@pytest.mark.parametrize(
    "make",
    [
        lambda: write.aegis(NEW, PASSPHRASE),
        lambda: write.twofas(NEW, PASSPHRASE),
        lambda: write.andotp(NEW, PASSPHRASE),
        lambda: write.ente(NEW, PASSPHRASE),
    ],
    ids=["aegis", "2fas", "andotp", "ente"],
)
async def test_an_encrypted_backup_is_enrolled_for_a_user(
    admin: AdminClient,
    services: Services,
    make: Callable[[], bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    status, _page = await post_backup(admin, make(), users="alice")
    assert status == 303
    directory = services.roster.current()
    imported = [s.issuer.lower() for s in NEW]
    assert list(directory.accounts) == BEFORE + imported
    assert directory.users["alice"].accounts[-len(imported) :] == tuple(imported)
    assert services.secrets.seed("steam") == SAMPLES[-1].secret + "======"
    home = await (await admin.get("/")).text()
    assert "Enrolled bank, cloud, shop, forge, mail, steam, heard by alice." in home
    for text in (home, caplog.text):
        assert PASSPHRASE not in text
        assert all(s.secret not in text for s in SAMPLES)


REFUSALS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "wrong-passphrase": (lambda: write.aegis(SAMPLES, PASSPHRASE), "hunter2", "wrong passphrase"),
    "no-passphrase": (lambda: write.ente(SAMPLES, PASSPHRASE), "", "type its passphrase"),
    "tampered": (tampered_twofas, PASSPHRASE, "damaged or were altered"),
    "scrypt-2^40": (lambda: _aegis_slot(n=2**40), PASSPHRASE, "damaged or hostile"),
    "truncated": (lambda: write.andotp(SAMPLES, PASSPHRASE)[:20], PASSPHRASE, "truncated"),
    "not-a-backup": (lambda: b"\x89PNG\r\n\x1a\n", PASSPHRASE, "andOTP backup"),
}


@pytest.mark.parametrize("refusal", REFUSALS)
async def test_each_refusal_is_shown_and_stores_nothing(
    admin: AdminClient, services: Services, refusal: str
) -> None:
    make, passphrase, words = REFUSALS[refusal]
    before = state_files(services)
    status, page = await post_backup(admin, make(), passphrase, users="alice")
    assert status == 400
    assert "Not enrolled: " in page
    assert words in page
    assert not passphrase or passphrase not in page
    assert state_files(services) == before


async def test_a_name_clash_enrols_none(admin: AdminClient, services: Services) -> None:
    clash = (write.Sample("Gmail", "me", SAMPLES[0].secret, "totp"), *NEW)
    before = state_files(services)
    status, page = await post_backup(admin, write.twofas(clash, PASSPHRASE))
    assert status == 409
    assert "already enrolled: gmail" in page
    assert state_files(services) == before


@pytest.mark.browser
async def test_import_an_aegis_backup_in_the_browser(
    admin_page: AdminPage, browser: Page, tmp_path: Path
) -> None:
    path = tmp_path / "aegis-backup.json"
    path.write_bytes(write.aegis(NEW, PASSPHRASE))
    await sign_in(browser, admin_page.url())

    await browser.set_input_files("#backup-file", str(path))
    await browser.fill("#backup-passphrase", "not the passphrase")
    async with browser.expect_navigation():
        await browser.click("#backup-form button[type=submit]")
    error = await browser.inner_text(".notice.error")
    assert error.startswith("Not enrolled: Aegis vault: wrong passphrase")
    assert admin_page.accounts() == BEFORE
    assert await browser.input_value("#backup-passphrase") == ""  # never sent back

    await browser.set_input_files("#backup-file", str(path))
    await browser.select_option("#backup-format", "aegis")
    await browser.fill("#backup-passphrase", PASSPHRASE)
    await browser.check("#backup-user-1")
    async with browser.expect_navigation():
        await browser.click("#backup-form button[type=submit]")
    notice = await browser.inner_text(NOTICE)
    assert notice == "Enrolled bank, cloud, shop, forge, mail, steam, heard by alice."
    row = await browser.inner_text("#accounts tr:has(code:text-is('steam'))")
    assert row.split("\t")[:5] == ["steam", "Steam", "STEAM", "SHA1", "5"]
    assert PASSPHRASE not in await browser.content()
    ARTIFACTS.mkdir(exist_ok=True)
    await browser.screenshot(path=str(ARTIFACTS / "admin-backup-import.png"), full_page=True)
