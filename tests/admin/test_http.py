"""The admin page over plain HTTP: headers, guards, cookies, sessions, and `totpd admin passwd`.

The browser tests show what the sysadmin sees; these name the attacks a browser would not
send on its own (a foreign Host, a cross-site post, a planted session id, a bad upload body).
"""

import asyncio
import hashlib
import io
import re
import stat
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import ClientResponse, FormData
from pytest_aiohttp import AiohttpClient

from tests.admin.helpers import ADMIN_PASSWORD, EXAMPLE_URI, AdminClient, Clock
from tests.helpers import REPO, WebhookServer, run_totpd
from tests.helpers import Client as WebhookClient
from totpd import config as config_module
from totpd.admin import create_admin_app
from totpd.admin.app import CONTENT_SECURITY_POLICY, host_is_allowed
from totpd.admin.enrol import decode_image
from totpd.admin.password import PASSWORD_FILE, AdminPassword
from totpd.admin.sessions import MAX_SESSIONS
from totpd.admin.site import SITE
from totpd.admin.tokens import SIGN_IN_FORM_S
from totpd.config import AdminConfig, Config, Listen
from totpd.errors import ConfigError, EnrolError
from totpd.otp import Account
from totpd.roster import Roster
from totpd.services import Services

ADMIN_DIR = REPO / "totpd" / "admin"


@pytest.fixture
async def admin(aiohttp_client: AiohttpClient, services: Services) -> AdminClient:
    """A client of the admin page (password set), not yet signed in."""
    AdminPassword(services.config.paths.state_dir, services.config.pins).set(ADMIN_PASSWORD)
    return await aiohttp_client(create_admin_app(services, clock=Clock()))


def csrf_of(html: str) -> str:
    """The CSRF token in a page's first form."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found[1]


async def sign_in(admin: AdminClient, password: str = ADMIN_PASSWORD) -> tuple[int, str]:
    """Sign in as a browser would; the status and text of the page it ends on."""
    page = await admin.get("/login")
    token = csrf_of(await page.text())
    response = await admin.post("/login", data={"csrf": token, "password": password})
    return response.status, await response.text()


def session_cookie(admin: AdminClient) -> str:
    """The session id the client holds."""
    (cookie,) = [c for c in admin.session.cookie_jar if c.key == "totpd-admin"]
    return cookie.value


# headers and guards -------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/login", "/", "/static/admin.js", "/no-such-page"])
async def test_every_response_carries_the_security_headers(admin: AdminClient, path: str) -> None:
    response = await admin.get(path)
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_pages_have_no_inline_script(admin: AdminClient) -> None:
    await sign_in(admin)
    html = await (await admin.get("/")).text()
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/static/vendor/jsQR.js">',
        '<script src="/static/admin.js">',
    ]
    assert not re.search(r"<[^>]+\son[a-z]+=", html)  # no inline event handlers either


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example:8081",  # DNS rebinding: a name the attacker points at 127.0.0.1
        "127.example.org:8081",
        "localhost.evil:8081",
        "10.0.0.1:8081",
        "0.0.0.0:8081",
        "[2001:db8::1]:8081",
        "[::ffff:10.0.0.1]:8081",
        "",
    ],
)
async def test_a_host_other_than_this_machine_is_refused(admin: AdminClient, host: str) -> None:
    response = await admin.get("/login", headers={"Host": host})
    assert response.status == 421


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8081", "localhost:8081", "[::1]:8081", "localhost", "127.0.0.2:9000"]
)
async def test_localhost_and_loopback_addresses_are_served(admin: AdminClient, host: str) -> None:
    assert (await admin.get("/login", headers={"Host": host})).status == 200


def test_with_allow_remote_ip_addresses_and_the_listen_host_are_served_names_are_not() -> None:
    admin = AdminConfig(listen=Listen("admin.lan", 8081), allow_remote=True)
    for host in ("admin.lan:8081", "192.168.1.5:8081", "[2001:db8::1]:8081", "localhost:8081"):
        assert host_is_allowed(host, admin), host
    for refused in ("attacker.example:8081", "admin.lan.attacker.example", "", None):
        assert not host_is_allowed(refused, admin), refused


async def test_a_request_without_a_host_header_is_refused(admin: AdminClient) -> None:
    """HTTP/1.0 needs no Host; aiohttp then puts the listening address in its place."""
    reader, writer = await asyncio.open_connection(admin.host, admin.port)
    writer.write(b"GET /login HTTP/1.0\r\n\r\n")
    status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == b"421"


async def test_a_cross_origin_post_is_refused(admin: AdminClient, services: Services) -> None:
    await sign_in(admin)
    token = csrf_of(await (await admin.get("/")).text())
    form = {"csrf": token, "uri": EXAMPLE_URI}
    response = await admin.post(
        "/enrol/text", data=form, headers={"Origin": "http://attacker.example"}
    )
    assert response.status == 403
    response = await admin.post("/enrol/text", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status == 403
    assert "example" not in services.roster.current().accounts
    assert (await admin.post("/enrol/text", data=form)).status == 200  # the same, from the page


async def test_the_webhook_listener_has_no_admin_routes(
    aiohttp_client: AiohttpClient, services: Services
) -> None:
    public: WebhookClient = await aiohttp_client(WebhookServer(services))
    for path in ("/", "/login", "/static/admin.js", "/enrol/text"):
        assert (await public.get(path)).status in (404, 405)
    assert (await public.post("/login", data={"password": "x"})).status in (404, 405)


# cookies and sessions -----------------------------------------------------------------------
def set_cookies(response: ClientResponse) -> dict[str, str]:
    """The Set-Cookie headers of a response, by cookie name."""
    return {h.partition("=")[0]: h for h in response.headers.getall("Set-Cookie", [])}


async def test_the_cookies_are_httponly_and_samesite_strict(admin: AdminClient) -> None:
    form = await admin.get("/login")
    token = csrf_of(await form.text())
    signed_in = await admin.post(
        "/login", data={"csrf": token, "password": ADMIN_PASSWORD}, allow_redirects=False
    )
    # The form's nonce before sign-in, the session once signed in (and the nonce is dropped).
    for cookie in (set_cookies(form)["totpd-sign-in"], set_cookies(signed_in)["totpd-admin"]):
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would be dropped


async def test_the_cookie_is_secure_behind_a_local_tls_proxy(admin: AdminClient) -> None:
    response = await admin.get("/login", headers={"X-Forwarded-Proto": "https"})
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-totpd-sign-in=")
    assert "Secure" in cookie


async def test_sign_in_issues_a_new_session_id(admin: AdminClient) -> None:
    planted = "a-session-id-an-attacker-chose"
    admin.session.cookie_jar.update_cookies({"totpd-admin": planted}, admin.make_url("/"))
    status, _ = await sign_in(admin)
    assert status == 200
    assert session_cookie(admin) != planted
    admin.session.cookie_jar.clear()
    admin.session.cookie_jar.update_cookies({"totpd-admin": planted}, admin.make_url("/"))
    response = await admin.get("/", allow_redirects=False)
    assert response.status == 303  # the planted id is worth nothing
    assert response.headers["Location"].startswith("/login")


async def test_the_session_expires_when_idle(admin: AdminClient) -> None:
    await sign_in(admin)
    assert admin.app is not None
    sessions = admin.app[SITE].sessions
    clock, idle_s = sessions.clock, sessions.idle_s
    assert isinstance(clock, Clock)
    clock.advance(idle_s - 1)
    assert (await admin.get("/", allow_redirects=False)).status == 200  # use resets the timer
    clock.advance(idle_s - 1)
    assert (await admin.get("/", allow_redirects=False)).status == 200
    clock.advance(idle_s + 1)
    response = await admin.get("/")
    assert response.url.path == "/login"
    assert "Your session has expired" in await response.text()


async def test_a_new_password_ends_signed_in_sessions(
    admin: AdminClient, services: Services, config_path: Path
) -> None:
    await sign_in(admin)
    changed = run_totpd(config_path, "admin", "passwd", stdin="another long passphrase\n")
    assert changed.returncode == 0, changed.stderr
    response = await admin.get("/")
    assert response.url.path == "/login"
    status, _ = await sign_in(admin)  # the old one no longer works
    assert status == 403
    status, _ = await sign_in(admin, "another long passphrase")
    assert status == 200


async def test_a_flood_of_sign_in_forms_neither_evicts_a_pending_one_nor_fills_memory(
    admin: AdminClient,
) -> None:
    pending = csrf_of(await (await admin.get("/login")).text())  # the admin, about to sign in
    assert admin.app is not None
    sessions = admin.app[SITE].sessions
    jar = aiohttp.DummyCookieJar()  # every visit a new browser, as a flood would be
    async with aiohttp.ClientSession(cookie_jar=jar) as flood:
        for _ in range(3 * MAX_SESSIONS):
            async with flood.get(admin.make_url("/login")) as response:
                assert response.status == 200
    assert len(sessions) == 0  # an unsigned visitor costs the server nothing to remember
    response = await admin.post("/login", data={"csrf": pending, "password": ADMIN_PASSWORD})
    assert response.status == 200
    assert response.url.path == "/"


async def test_a_sign_in_form_is_bound_to_its_browser(admin: AdminClient) -> None:
    """A token from one browser (say, fetched by a local process) is worth nothing in another."""
    async with aiohttp.ClientSession() as other, other.get(admin.make_url("/login")) as page:
        stolen = csrf_of(await page.text())
    await admin.get("/login")
    response = await admin.post("/login", data={"csrf": stolen, "password": ADMIN_PASSWORD})
    assert response.status == 403
    assert "security token is missing or wrong" in await response.text()


async def test_an_old_sign_in_form_is_refused(admin: AdminClient) -> None:
    token = csrf_of(await (await admin.get("/login")).text())
    assert admin.app is not None
    clock = admin.app[SITE].sessions.clock
    assert isinstance(clock, Clock)
    clock.advance(SIGN_IN_FORM_S + 1)
    response = await admin.post("/login", data={"csrf": token, "password": ADMIN_PASSWORD})
    assert response.status == 403
    status, _ = await sign_in(admin)  # a fresh form works
    assert status == 200


async def test_a_forged_sign_in_is_refused_even_with_the_password(admin: AdminClient) -> None:
    await admin.get("/login")  # a session, but the form's token is not sent
    response = await admin.post("/login", data={"password": ADMIN_PASSWORD})
    assert response.status == 403
    assert "security token is missing or wrong" in await response.text()
    assert (await admin.get("/", allow_redirects=False)).status == 303  # not signed in


async def test_without_a_password_nobody_signs_in(
    aiohttp_client: AiohttpClient, services: Services
) -> None:
    admin = await aiohttp_client(create_admin_app(services))
    page = await (await admin.get("/login")).text()
    assert "No admin password is set yet" in page
    status, text = await sign_in(admin, "")
    assert status == 403
    assert "No admin password is set." in text


# forms --------------------------------------------------------------------------------------
async def test_a_malformed_upload_body_is_a_clear_400(
    admin: AdminClient, services: Services
) -> None:
    await sign_in(admin)
    response = await admin.post(
        "/enrol/image",
        data=b"--nonsense\r\nnot a part\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=other"},
    )
    assert response.status == 400
    assert "That upload could not be read." in await response.text()
    assert "example" not in services.roster.current().accounts


async def test_an_upload_declaring_a_huge_length_is_refused_unread(admin: AdminClient) -> None:
    await sign_in(admin)
    token = csrf_of(await (await admin.get("/")).text())
    form = FormData()
    form.add_field("csrf", token)
    form.add_field("image", io.BytesIO(b"\x89PNG" + bytes(6 << 20)), filename="big.png")
    response = await admin.post("/enrol/image", data=form)
    assert response.status == 413


async def test_an_image_just_over_the_cap_is_cut_off_while_streaming(
    admin: AdminClient, services: Services
) -> None:
    await sign_in(admin)
    token = csrf_of(await (await admin.get("/")).text())
    assert admin.app is not None
    limit_bytes = admin.app[SITE].max_upload_bytes
    form = FormData()
    form.add_field("csrf", token)
    form.add_field("image", io.BytesIO(b"\x89PNG" + bytes(limit_bytes - 3)), filename="edge.png")
    response = await admin.post("/enrol/image", data=form)  # within the length slack
    assert response.status == 413
    assert "That file is too large" in await response.text()
    assert "example" not in services.roster.current().accounts


@pytest.mark.parametrize(("width", "height"), [(5_000, 4_000), (10_000, 10_000), (20_000, 20_000)])
def test_an_image_bomb_is_refused_with_its_real_size(width: int, height: int) -> None:
    from PIL import Image

    png = io.BytesIO()
    Image.new("1", (width, height), 1).save(png, format="PNG")  # a few hundred KB at most
    with pytest.raises(EnrolError) as refused:
        decode_image(png.getvalue())
    assert str(refused.value) == (
        f"the image is too large to decode ({width}x{height} pixels; the limit is 16"
        " megapixels): crop it to the QR code"
    )


async def test_a_label_with_a_control_character_is_refused_and_nothing_stored(
    admin: AdminClient, services: Services
) -> None:
    await sign_in(admin)
    token = csrf_of(await (await admin.get("/")).text())
    form = {"csrf": token, "uri": EXAMPLE_URI, "name": "example", "label": "Ex\x1b[2Jample"}
    response = await admin.post("/enrol/text", data=form)
    assert response.status == 400
    assert "spoken label holds an unprintable character (U+001B)" in await response.text()
    assert "example" not in services.roster.current().accounts


async def test_a_hostile_issuer_is_enrolled_as_the_page_shows_it(
    admin: AdminClient, services: Services
) -> None:
    await sign_in(admin)
    token = csrf_of(await (await admin.get("/")).text())
    uri = EXAMPLE_URI.replace("issuer=Example", "issuer=Ex%E2%80%AEam%1B%5B2Jple")
    assert (await admin.post("/enrol/text", data={"csrf": token, "uri": uri})).status == 200
    (account,) = [
        a for a in services.roster.current().accounts.values() if a.name not in ("github", "gmail")
    ]
    assert (account.label, account.issuer) == ("Exam[2Jple", "Exam[2Jple")


async def test_a_bare_secret_needs_a_name(admin: AdminClient, services: Services) -> None:
    await sign_in(admin)
    token = csrf_of(await (await admin.get("/")).text())
    form = {"csrf": token, "uri": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}
    response = await admin.post("/enrol/text", data=form)
    assert response.status == 400
    assert "a bare secret needs a name" in await response.text()
    response = await admin.post("/enrol/text", data={**form, "name": "bank", "label": "Bank"})
    assert response.status == 200
    assert services.roster.current().accounts["bank"].label == "Bank"


async def test_an_existing_name_is_refused_and_the_seed_kept(
    admin: AdminClient, services: Services
) -> None:
    await sign_in(admin)
    token = csrf_of(await (await admin.get("/")).text())
    before = services.secrets.seed("github")
    form = {"csrf": token, "uri": EXAMPLE_URI, "name": "github"}
    response = await admin.post("/enrol/text", data=form)
    assert response.status == 409
    assert "already enrolled: github" in await response.text()
    assert services.secrets.seed("github") == before


async def test_a_user_without_room_on_the_keypad_stores_nothing(
    admin: AdminClient, services: Services
) -> None:
    def fill(roster: Roster) -> Roster:
        for number in range(7):
            roster = roster.with_account(Account(f"extra{number}", f"Extra {number}"))
        names = tuple(roster.accounts)[:9]
        return roster.with_user(replace(roster.users["alice"], accounts=names))

    services.roster.update(fill)
    await sign_in(admin)
    token = csrf_of(await (await admin.get("/")).text())
    response = await admin.post(
        "/enrol/text", data={"csrf": token, "uri": EXAMPLE_URI, "users": "alice"}
    )
    assert response.status == 409
    assert "the keypad menu holds 9" in await response.text()
    assert "example" not in services.roster.current().accounts


# the password file and its command ----------------------------------------------------------
def test_admin_passwd_stores_an_argon2id_hash_owner_only(config_path: Path, config: Config) -> None:
    result = run_totpd(config_path, "admin", "passwd", stdin=f"{ADMIN_PASSWORD}\n")
    assert result.returncode == 0, result.stderr
    stored = config.paths.state_dir / PASSWORD_FILE
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    text = stored.read_text()
    assert text.startswith("$argon2id$")
    assert ADMIN_PASSWORD not in text
    assert AdminPassword(config.paths.state_dir, config.pins).verify_sync(ADMIN_PASSWORD)
    assert not AdminPassword(config.paths.state_dir, config.pins).verify_sync("wrong " * 3)


def test_admin_passwd_refuses_a_short_password(config_path: Path, config: Config) -> None:
    result = run_totpd(config_path, "admin", "passwd", stdin="short\n")
    assert result.returncode == 1
    assert "at least 12 characters" in result.stderr
    assert "short" not in result.stderr.replace("at least", "")
    assert not (config.paths.state_dir / PASSWORD_FILE).exists()


def test_session_idle_is_configurable_within_bounds(tmp_path: Path) -> None:
    base = f'[paths]\nstate_dir = "{tmp_path}"\n[admin]\nlisten = "127.0.0.1:8081"\n'
    assert config_module.parse(base + "session_idle_s = 300\n").admin.session_idle_s == 300
    with pytest.raises(ConfigError, match=r"admin\.session_idle_s"):
        config_module.parse(base + "session_idle_s = 5\n")


def test_the_vendored_qr_reader_is_the_documented_release() -> None:
    documented = (ADMIN_DIR / "VENDOR.md").read_text()
    digest = hashlib.sha256((ADMIN_DIR / "static/vendor/jsQR.js").read_bytes()).hexdigest()
    assert f"`{digest}`" in documented
    assert (
        (ADMIN_DIR / "static/vendor/jsQR.LICENSE")
        .read_text()
        .startswith("                                 Apache License")
    )


def test_a_hash_with_old_cost_settings_is_upgraded_at_sign_in(config: Config) -> None:
    state_dir = config.paths.state_dir
    AdminPassword(state_dir, config.pins).set(ADMIN_PASSWORD)
    old_hash = (state_dir / PASSWORD_FILE).read_text()
    dearer = replace(config.pins, argon2_time_cost=config.pins.argon2_time_cost + 1)
    assert AdminPassword(state_dir, dearer).verify_sync(ADMIN_PASSWORD)
    new_hash = (state_dir / PASSWORD_FILE).read_text()
    assert new_hash != old_hash
    assert f"t={dearer.argon2_time_cost}," in new_hash
