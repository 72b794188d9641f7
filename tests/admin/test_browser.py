"""The admin page in headless Chromium: sign in, enrol by paste, upload and camera, and every
bad input refused with a message on the page and nothing stored.
"""

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page, Response

from tests.admin.helpers import (
    ADMIN_PASSWORD,
    ARTIFACTS,
    EXAMPLE_SEED,
    EXAMPLE_URI,
    AdminPage,
    BrowserFactory,
    qr_png,
    qr_video,
    sign_in,
)
from tests.helpers import CALLER, PIN, codes_near_now, free_port, run_totpd, wait_for_port
from totpd.admin.auth import LOCKOUT_USER

pytestmark = pytest.mark.browser
Daemon = Callable[..., tuple[Path, int]]

NOTICE = ".notice"


async def submit(page: Page, form: str) -> Response:
    """Submit `form` (a selector) and return the response the browser navigated to."""
    async with page.expect_navigation() as navigation:
        await page.click(f"{form} button[type=submit]")
    response = await navigation.value
    assert response is not None
    return response


async def upload(page: Page, image: Path) -> Response:
    """Choose `image` in the upload form and send it."""
    await page.set_input_files("#image", str(image))
    async with page.expect_response(lambda r: r.url.endswith("/enrol/image")) as posted:
        await page.click("#upload-form button[type=submit]")
    response = await posted.value
    await page.wait_for_load_state()
    return response


# the whole story, through a real daemon ------------------------------------------------------
async def test_enrol_a_screenshot_and_hear_it_on_a_call(
    daemon: Daemon, browser: Page, tmp_path: Path
) -> None:
    admin_port = free_port()
    config_path, webhook_port = daemon(f'[admin]\nlisten = "127.0.0.1:{admin_port}"\n')
    wait_for_port(admin_port)
    passwd = run_totpd(config_path, "admin", "passwd", stdin=f"{ADMIN_PASSWORD}\n")
    assert passwd.returncode == 0, passwd.stderr
    base = f"http://127.0.0.1:{admin_port}"

    # A caller mistypes their PIN once: the page will show it among the lockouts.
    typo = await asyncio.to_thread(run_totpd, config_path, "call", "--press", "999999")
    assert "not accepted" in typo.stdout

    await sign_in(browser, f"{base}/")
    assert browser.url == f"{base}/"
    await browser.check("#upload-user-1")
    response = await upload(browser, qr_png(tmp_path / "screenshot.png", EXAMPLE_URI))
    assert response.status == 303  # then the home page, with the news
    assert await browser.inner_text(NOTICE) == "Enrolled example, heard by alice."
    row = await browser.inner_text("#accounts tr:has(code:text-is('example'))")
    assert row.split("\t") == ["example", "Example", "TOTP", "SHA1", "6", "every 30 s", "alice"]
    assert EXAMPLE_SEED not in await browser.content()
    caller_row = await browser.inner_text(f"#lockouts tr:has(code:text-is('{CALLER}'))")
    assert caller_row.startswith(f"caller\t{CALLER}\t1 of 3\topen")
    ARTIFACTS.mkdir(exist_ok=True)
    await browser.screenshot(path=str(ARTIFACTS / "admin-page.png"), full_page=True)

    call = await asyncio.to_thread(run_totpd, config_path, "call", "--press", PIN, "--press", "3")
    assert call.returncode == 0, call.stdout + call.stderr
    assert "For Example, press 3." in call.stdout
    heard = re.findall(r"Your Example code is: ([\d ]+)\.", call.stdout)
    assert heard
    assert heard[0].replace(" ", "") in codes_near_now(EXAMPLE_SEED)

    async with aiohttp.ClientSession() as session:  # the public listener has no admin page
        for path in ("/", "/login", "/static/admin.js"):
            async with session.get(f"http://127.0.0.1:{webhook_port}{path}") as public:
                assert public.status == 404


# the other ways in ----------------------------------------------------------------------------
async def test_paste_a_uri_without_javascript(
    admin_page: AdminPage, launch: BrowserFactory
) -> None:
    page = await (await launch(javascript=False)).new_page()
    await sign_in(page, admin_page.url())
    assert not await page.is_visible("#camera")
    await page.fill("#uri", EXAMPLE_URI)
    await page.fill("#paste-label", "Example")
    await page.check("#paste-user-1")
    response = await submit(page, "#paste-form")
    assert response.status == 200
    assert await page.inner_text(NOTICE) == "Enrolled example, heard by alice."
    assert admin_page.accounts() == ["github", "gmail", "example"]
    assert admin_page.seed("example").rstrip("=") == EXAMPLE_SEED
    assert admin_page.services.roster.current().users["alice"].accounts == ("github", "example")


async def test_the_camera_reads_a_qr_code_into_the_paste_form(
    admin_page: AdminPage, launch: BrowserFactory, tmp_path: Path
) -> None:
    video = qr_video(tmp_path / "camera.y4m", EXAMPLE_URI)
    context = await launch(
        (
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        )
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await sign_in(page, admin_page.url())
    await page.click("#camera-start")
    # (Playwright's own waiting, not wait_for_function: the page's CSP forbids eval.)
    await page.locator("#camera-status", has_text="Found an otpauth:// QR code").wait_for()
    assert await page.input_value("#uri") == EXAMPLE_URI
    await submit(page, "#paste-form")
    assert await page.inner_text(NOTICE) == "Enrolled example (no user hears it yet)."
    assert "example" in admin_page.accounts()
    assert errors == []  # nothing broke the Content-Security-Policy


async def test_a_dropped_screenshot_is_uploaded(
    admin_page: AdminPage, browser: Page, tmp_path: Path
) -> None:
    png = qr_png(tmp_path / "dropped.png", EXAMPLE_URI).read_bytes()
    await sign_in(browser, admin_page.url())
    await browser.evaluate(
        """(bytes) => {
            const file = new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"});
            const transfer = new DataTransfer();
            transfer.items.add(file);
            const zone = document.getElementById("drop-zone");
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        list(png),
    )
    await submit(browser, "#upload-form")
    assert await browser.inner_text(NOTICE) == "Enrolled example (no user hears it yet)."
    assert "example" in admin_page.accounts()


# forged and stale forms ---------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "forged-token"], ids=["missing", "wrong"])
async def test_a_form_without_the_right_csrf_token_is_refused(
    admin_page: AdminPage, browser: Page, token: str | None
) -> None:
    await sign_in(browser, admin_page.url())
    await browser.fill("#uri", EXAMPLE_URI)
    if token is None:
        await browser.evaluate("document.querySelector('#paste-form [name=csrf]').remove()")
    else:
        await browser.evaluate(
            f"document.querySelector('#paste-form [name=csrf]').value = {token!r}"
        )
    response = await submit(browser, "#paste-form")
    assert response.status == 403
    assert "security token is missing or wrong" in await browser.inner_text(NOTICE)
    assert admin_page.accounts() == ["github", "gmail"]


async def test_an_expired_session_is_sent_to_sign_in_and_nothing_is_stored(
    admin_page: AdminPage, browser: Page
) -> None:
    await sign_in(browser, admin_page.url())
    await browser.fill("#uri", EXAMPLE_URI)
    admin_page.clock.advance(admin_page.services.config.admin.session_idle_s + 1)
    await submit(browser, "#paste-form")
    assert browser.url == admin_page.url("/login")
    assert "Your session has expired" in await browser.inner_text(NOTICE)
    assert admin_page.accounts() == ["github", "gmail"]
    await browser.goto(admin_page.url())
    assert browser.url == admin_page.url("/login")  # and it stays expired


async def test_sign_out_ends_the_session(admin_page: AdminPage, browser: Page) -> None:
    await sign_in(browser, admin_page.url())
    await submit(browser, "form[action='/logout']")
    assert browser.url == admin_page.url("/login")
    await browser.goto(admin_page.url())
    assert browser.url == admin_page.url("/login")


# passwords ----------------------------------------------------------------------------------
async def test_a_wrong_password_is_refused_and_counted_until_locked_out(
    admin_page: AdminPage, browser: Page
) -> None:
    lockout = admin_page.services.admin_lockout
    for attempt in range(1, 4):
        await sign_in(browser, admin_page.url(), password=f"wrong password {attempt}")
        assert await browser.inner_text(".notice.error") == "Wrong password."
        assert browser.url == admin_page.url("/login")
        failures = {(s.layer.value, s.key): s.failures for s in await lockout.status()}
        assert failures[("user", f"admin:{LOCKOUT_USER}")] == attempt
        assert ("global", "all") not in failures  # callers' budget untouched
    # The caller layer allows 3 failures per 15 minutes: now even the right password waits.
    await sign_in(browser, admin_page.url())
    assert "Too many failed sign-ins" in await browser.inner_text(".notice.error")
    assert browser.url == admin_page.url("/login")
    await lockout.unlock()  # what `totpd unlock` does
    await sign_in(browser, admin_page.url())
    assert browser.url == admin_page.url("/")


async def test_lockouts_are_listed_and_unlocked(admin_page: AdminPage, browser: Page) -> None:
    lockout = admin_page.services.lockout
    for _ in range(3):  # three wrong PINs from one number: its caller layer is locked
        await lockout.record_failure(await lockout.admit(CALLER, "alice"))
    await sign_in(browser, admin_page.url())
    row = browser.locator(f"#lockouts tr:has(code:text-is('{CALLER}'))")
    assert "locked until" in await row.inner_text()
    await row.locator("button").click()
    await browser.wait_for_load_state()
    assert await browser.inner_text(NOTICE) == f"Cleared caller {CALLER}."
    assert await row.count() == 0
    assert (await lockout.admit(CALLER, "alice")).refused_by is None


# bad uploads --------------------------------------------------------------------------------
async def _refused_upload(admin_page: AdminPage, page: Page, image: Path) -> tuple[int, str]:
    await sign_in(page, admin_page.url())
    response = await upload(page, image)
    message = await page.inner_text(".notice.error")
    assert admin_page.accounts() == ["github", "gmail"]  # nothing stored
    return response.status, message


async def test_an_oversized_upload_is_refused(
    admin_page: AdminPage, browser: Page, tmp_path: Path
) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(qr_png(tmp_path / "qr.png", EXAMPLE_URI).read_bytes() + bytes(6 << 20))
    status, message = await _refused_upload(admin_page, browser, big)
    assert status == 413
    assert message == "That file is too large: the limit is 5 MB. Nothing was stored."


async def test_a_file_that_is_not_an_image_is_refused(
    admin_page: AdminPage, browser: Page, tmp_path: Path
) -> None:
    text = tmp_path / "notes.png"
    text.write_text(EXAMPLE_URI)
    status, message = await _refused_upload(admin_page, browser, text)
    assert status == 400
    assert message == "Not enrolled: not an image totpd can read (PNG, JPEG, ...)."


async def test_a_huge_image_is_refused_before_decoding(
    admin_page: AdminPage, browser: Page, tmp_path: Path
) -> None:
    from PIL import Image

    bomb = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000), 1).save(bomb)  # 400 megapixels in a few hundred KB
    assert bomb.stat().st_size < 1 << 20
    status, message = await _refused_upload(admin_page, browser, bomb)
    assert status == 400
    assert message.startswith("Not enrolled: the image is too large to decode")


async def test_an_image_without_a_qr_code_is_refused(
    admin_page: AdminPage, browser: Page, tmp_path: Path
) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (800, 600), "white").save(blank)
    status, message = await _refused_upload(admin_page, browser, blank)
    assert status == 400
    assert message == "Not enrolled: no QR code found in the image."


async def test_a_qr_code_that_is_not_an_otp_link_is_refused(
    admin_page: AdminPage, browser: Page, tmp_path: Path
) -> None:
    status, message = await _refused_upload(
        admin_page, browser, qr_png(tmp_path / "link.png", "https://example.com/")
    )
    assert status == 400
    assert message == "Not enrolled: the QR code holds something other than an otpauth:// URI."
