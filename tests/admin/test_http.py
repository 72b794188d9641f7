"""The admin page over plain HTTP: headers, guards, cookies, sessions, and `totpd admin passwd`.

The browser tests show what the sysadmin sees; these name the attacks a browser would not
send on its own (a foreign Host, a cross-site post, a planted session id, a bad upload body).
"""

import hashlib
import io
import os
import re
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.admin.helpers import ADMIN_PASSWORD, EXAMPLE_URI, Clock
from tests.helpers import REPO, WebhookServer, run_totpd
from tests.helpers import Client as WebhookClient
from totpd import config as config_module
from totpd.admin import create_admin_app
from totpd.admin.app import CONTENT_SECURITY_POLICY
from totpd.admin.password import PASSWORD_FILE, AdminPassword
from totpd.admin.site import SITE
from totpd.config import Config
from totpd.errors import ConfigError
from totpd.otp import Account
from totpd.roster import Roster
from totpd.services import Services

Client = TestClient[web.Request, web.Application]  # a client of the admin page
ADMIN_DIR = REPO / "totpd" / "admin"


@pytest.fixture
async def admin(aiohttp_client: AiohttpClient, services: Services) -> Client:
    """A client of the admin page (password set), not yet signed in."""
    AdminPassword(services.config.paths.state_dir, services.config.pins).set(ADMIN_PASSWORD)
    return await aiohttp_client(create_admin_app(services, clock=Clock()))


def csrf_of(html: str) -> str:
    """The CSRF token in a page's first form."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found[1]


async def sign_in(admin: Client, password: str = ADMIN_PASSWORD) -> tuple[int, str]:
    """Sign in as a browser would; the status and text of the page it ends on."""
    page = await admin.get("/login")
    token = csrf_of(await page.text())
    response = await admin.post("/login", data={"csrf": token, "password": password})
    return response.status, await response.text()


def session_cookie(admin: Client) -> str:
    """The session id the client holds."""
    (cookie,) = [c for c in admin.session.cookie_jar if c.key == "totpd-admin"]
    return cookie.value


# headers and guards -------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/login", "/", "/static/admin.js", "/no-such-page"])
async def test_every_response_carries_the_security_headers(admin: Client, path: str) -> None:
    response = await admin.get(path)
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_pages_have_no_inline_script(admin: Client) -> None:
    await sign_in(admin)
    html = await (await admin.get("/")).text()
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/static/vendor/jsQR.js">',
        '<script src="/static/admin.js">',
    ]
    assert not re.search(r"<[^>]+\son[a-z]+=", html)  # no inline event handlers either


async def test_a_dns_rebinding_host_is_refused(admin: Client) -> None:
    response = await admin.get("/login", headers={"Host": "attacker.example:8081"})
    assert response.status == 421
    for host in ("127.0.0.1:8081", "localhost:8081", "[::1]:8081"):
        assert (await admin.get("/login", headers={"Host": host})).status == 200


async def test_a_cross_origin_post_is_refused(admin: Client, services: Services) -> None:
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
async def test_the_session_cookie_is_httponly_and_samesite_strict(admin: Client) -> None:
    response = await admin.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("totpd-admin=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would be dropped


async def test_the_cookie_is_secure_behind_a_local_tls_proxy(admin: Client) -> None:
    response = await admin.get("/login", headers={"X-Forwarded-Proto": "https"})
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-totpd-admin=")
    assert "Secure" in cookie


async def test_sign_in_issues_a_new_session_id(admin: Client) -> None:
    await admin.get("/login")
    planted = session_cookie(admin)
    status, _ = await sign_in(admin)
    assert status == 200
    assert session_cookie(admin) != planted
    admin.session.cookie_jar.clear()
    admin.session.cookie_jar.update_cookies({"totpd-admin": planted}, admin.make_url("/"))
    response = await admin.get("/", allow_redirects=False)
    assert response.status == 303  # the id from before sign-in is worth nothing
    assert response.headers["Location"] == "/login"


async def test_the_session_expires_when_idle(admin: Client) -> None:
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
    admin: Client, services: Services, config_path: Path
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


async def test_a_forged_sign_in_is_refused_even_with_the_password(admin: Client) -> None:
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
async def test_a_malformed_upload_body_is_a_clear_400(admin: Client, services: Services) -> None:
    await sign_in(admin)
    response = await admin.post(
        "/enrol/image",
        data=b"--nonsense\r\nnot a part\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=other"},
    )
    assert response.status == 400
    assert "That upload could not be read." in await response.text()
    assert "example" not in services.roster.current().accounts


async def test_an_upload_declaring_a_huge_length_is_refused_unread(admin: Client) -> None:
    await sign_in(admin)
    token = csrf_of(await (await admin.get("/")).text())
    form = FormData()
    form.add_field("csrf", token)
    form.add_field("image", io.BytesIO(b"\x89PNG" + bytes(6 << 20)), filename="big.png")
    response = await admin.post("/enrol/image", data=form)
    assert response.status == 413


async def test_an_image_just_over_the_cap_is_cut_off_while_streaming(
    admin: Client, services: Services
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


async def test_a_bare_secret_needs_a_name(admin: Client, services: Services) -> None:
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
    admin: Client, services: Services
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
    admin: Client, services: Services
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


@pytest.mark.root  # as `sudo totpd admin passwd` has
def test_admin_passwd_as_root_leaves_the_file_to_the_daemons_user(
    config_path: Path, config: Config
) -> None:
    nobody = 65534
    os.chown(config.paths.state_dir, nobody, nobody)
    result = run_totpd(config_path, "admin", "passwd", stdin=f"{ADMIN_PASSWORD}\n")
    assert result.returncode == 0, result.stderr
    stored = (config.paths.state_dir / PASSWORD_FILE).stat()
    assert (stored.st_uid, stored.st_gid) == (nobody, nobody)


def test_a_hash_with_old_cost_settings_is_upgraded_at_sign_in(config: Config) -> None:
    state_dir = config.paths.state_dir
    AdminPassword(state_dir, config.pins).set(ADMIN_PASSWORD)
    old_hash = (state_dir / PASSWORD_FILE).read_text()
    dearer = replace(config.pins, argon2_time_cost=config.pins.argon2_time_cost + 1)
    assert AdminPassword(state_dir, dearer).verify_sync(ADMIN_PASSWORD)
    new_hash = (state_dir / PASSWORD_FILE).read_text()
    assert new_hash != old_hash
    assert f"t={dearer.argon2_time_cost}," in new_hash
