"""The admin page's aiohttp application: routes, guards and security headers.

It runs on its own listener (`[admin] listen`, loopback unless `allow_remote`), never on the
public webhook listener. Every response carries a strict Content-Security-Policy (scripts and
styles from this origin only, no inline script), X-Frame-Options DENY and no-store caching.
"""

import ipaddress
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from totpd.admin import auth, enrol, lockouts, pages
from totpd.admin.forms import MAX_FORM_BYTES
from totpd.admin.password import AdminPassword
from totpd.admin.sessions import SessionStore
from totpd.admin.site import SITE, Site
from totpd.admin.tokens import SignInTokens
from totpd.config import AdminConfig, Listen, is_loopback_host
from totpd.services import Services

STATIC_DIR = Path(__file__).parent / "static"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: with it, Chromium sends `Origin: null` on form posts.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=(), payment=()",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_is_allowed(host: str | None, admin: AdminConfig) -> bool:
    """True for a Host header naming this machine: "localhost" or a loopback address.

    A DNS name pointing at 127.0.0.1 (DNS rebinding) is refused, so a web page the admin
    visits cannot make their browser talk to the tunnel under its own origin; so is a request
    with no Host at all. With `allow_remote`, the host of `admin.listen` and any IP address
    are served too: neither is a name an attacker's DNS can rebind.
    """
    try:
        name = urlsplit(f"//{host}").hostname if host else None
    except ValueError:
        return False
    if name is None:
        return False
    if is_loopback_host(name):
        return True
    if not admin.allow_remote:
        return False
    listen = admin.listen
    if isinstance(listen, Listen) and name == listen.host.lower():
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a foreign Host (unless remote access is allowed) and cross-origin form posts."""
    admin = request.app[SITE].services.config.admin
    # The header itself: without one, aiohttp's request.host falls back to the local address.
    if not host_is_allowed(request.headers.get(hdrs.HOST), admin):
        return web.Response(status=421, text="This page answers to 127.0.0.1 or localhost only.")
    if request.method in UNSAFE_METHODS:
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            return web.Response(status=403, text="Cross-origin form posts are refused.")
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return web.Response(status=403, text="Cross-site form posts are refused.")
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value


def create_admin_app(
    services: Services, clock: Callable[[], float] = time.monotonic
) -> web.Application:
    """The admin page application; `clock` times session expiry."""
    config = services.config
    app = web.Application(client_max_size=MAX_FORM_BYTES, middlewares=[_guard])
    app[SITE] = Site(
        services=services,
        password=AdminPassword(config.paths.state_dir, config.pins),
        sessions=SessionStore(idle_s=config.admin.session_idle_s, clock=clock),
        sign_in_forms=SignInTokens(clock=clock),
        templates=pages.create_templates(),
    )
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", auth.signed_in(pages.home))
    app.router.add_get("/login", auth.sign_in_page)
    app.router.add_post("/login", auth.sign_in)
    app.router.add_post("/logout", auth.sign_out)
    app.router.add_post("/enrol/text", enrol.enrol_text)
    app.router.add_post("/enrol/image", enrol.enrol_image)
    app.router.add_post("/enrol/backup", enrol.enrol_backup)
    app.router.add_post("/lockouts/unlock", lockouts.unlock)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False, show_index=False)
    return app
