"""Sign-in, sign-out and the cookies.

Until the admin signs in, the server keeps nothing: the sign-in form's CSRF token is signed
(totpd.admin.tokens), its nonce in a cookie of its own, so no flood of anonymous visits can
fill memory or push out a form the admin is about to send. A session exists only after the
right password; its cookie carries only a random session id. Both cookies are HttpOnly,
SameSite=Strict, and Secure (with the `__Host-` prefix) when the page is served over TLS or
through a TLS proxy on this machine. Password guesses go through the same lockout layers as
PINs, keyed by a fixed name for the admin account, and no guess is checked while a layer is
tripped.
"""

import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from totpd.admin.forms import STALE_FORM, check_csrf, read_form
from totpd.admin.pages import home_page, redirect, render
from totpd.admin.sessions import Notice, Session, Tone
from totpd.admin.site import SITE
from totpd.errors import AdminRefused, LockoutUnavailable

COOKIE = "totpd-admin"
SIGN_IN_COOKIE = "totpd-sign-in"
SECURE_PREFIX = "__Host-"
LOCKOUT_USER = "password"  # in the admin lockout's own windows, apart from every caller's
EXPIRED = "Your session has expired. Sign in again; nothing was changed."
EXPIRED_QUERY = "expired"  # /login?expired shows EXPIRED: the server keeps no notice for it

log = logging.getLogger("totpd.admin")

SessionHandler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def _peer(request: web.Request) -> str:
    """Who connected, for a log line: an address, or the Unix socket (whose peers have none)."""
    return request.remote or "the Unix socket"


def _is_local(request: web.Request) -> bool:
    """True for a peer on this machine: a loopback address, or any peer of the Unix socket."""
    if request.remote == "":
        return True
    try:
        return request.remote is not None and ipaddress.ip_address(request.remote).is_loopback
    except ValueError:
        return False


def is_https(request: web.Request) -> bool:
    """True over TLS, or when a proxy on this machine says the browser used https."""
    if request.secure:
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "").strip().lower()
    return forwarded == "https" and _is_local(request)


def _cookie_name(request: web.Request, name: str = COOKIE) -> str:
    return SECURE_PREFIX + name if is_https(request) else name


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(
        _cookie_name(request, name),
        value,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    """Point the browser at `session`."""
    _set_cookie(request, response, COOKIE, session.id)


def current_session(request: web.Request) -> tuple[Session | None, bool]:
    """The browser's live session, and whether it sent a session cookie at all.

    A signed-in session whose password has since changed is ended here.
    """
    site = request.app[SITE]
    session_id = request.cookies.get(_cookie_name(request))
    session = site.sessions.get(session_id)
    if (
        session is not None
        and session.signed_in
        and session.password_version != site.password.version()
    ):
        site.sessions.end(session)
        return None, True
    return session, session_id is not None


def to_sign_in(request: web.Request, expired: bool) -> web.Response:
    """Redirect to the sign-in page; when the session expired, say so once and forget it."""
    if not expired:
        return redirect("/login")
    response = redirect(f"/login?{EXPIRED_QUERY}")
    response.del_cookie(_cookie_name(request), path="/")
    return response


def signed_in(handler: SessionHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a handler that needs a signed-in session; others go to the sign-in page.

    A refusal is shown on the home page with its status; nothing has been changed by then.
    """

    async def guarded(request: web.Request) -> web.StreamResponse:
        session, had_cookie = current_session(request)
        if session is None or not session.signed_in:
            return to_sign_in(request, expired=had_cookie)
        try:
            return await handler(request, session)
        except AdminRefused as exc:
            return await home_page(request, session, exc.status, exc.message)

    return guarded


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    """GET /login: the sign-in form (with a CSRF token, so even sign-in cannot be forged)."""
    session, _ = current_session(request)
    if session is not None and session.signed_in:
        return redirect("/")
    expired = [Notice(Tone.ERROR, EXPIRED)] if EXPIRED_QUERY in request.query else []
    return _sign_in_form(request, notices=expired)


def _sign_in_form(
    request: web.Request, status: int = 200, error: str = "", notices: list[Notice] | None = None
) -> web.Response:
    """The sign-in page with a new form: its token in the page, its nonce in a cookie."""
    site = request.app[SITE]
    form = site.sign_in_forms.issue()
    response = render(
        request,
        "login.html",
        status=status,
        csrf_token=form.token,
        notices=notices or [],
        error=error,
        password_set=site.password.is_set(),
    )
    _set_cookie(request, response, SIGN_IN_COOKIE, form.nonce)
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    """POST /login: check the token, the lockout, then the password (Argon2id, off the loop)."""
    site = request.app[SITE]
    try:
        form = await read_form(request)
    except AdminRefused as exc:
        return _sign_in_form(request, exc.status, exc.message)
    nonce = request.cookies.get(_cookie_name(request, SIGN_IN_COOKIE))
    if not site.sign_in_forms.check(nonce, form.get("csrf")):
        return _sign_in_form(request, 403, STALE_FORM)
    lockout = site.services.admin_lockout
    try:
        # Counted before the check, as a PIN is: a crash mid-check still counts the guess.
        # Every browser arrives through the same tunnel or socket: one shared caller key.
        admission = await lockout.admit("", LOCKOUT_USER)
    except LockoutUnavailable:
        log.error("admin sign-in refused: lockout storage unavailable")
        return _sign_in_form(request, 503, "Sign-in is unavailable right now.")
    if admission.refused_by is not None:
        log.warning(
            "admin sign-in refused from %s: locked out (%s)", _peer(request), admission.refused_by
        )
        return _sign_in_form(
            request,
            429,
            "Too many failed sign-ins. Wait, or clear the lockout with `totpd unlock`.",
        )
    if await site.password.verify(str(form.get("password", ""))):
        await lockout.give_back(admission)
        earlier, _ = current_session(request)
        if earlier is not None:
            site.sessions.end(earlier)
        session = site.sessions.new(password_version=site.password.version())
        log.info("admin signed in from %s", _peer(request))
        response = redirect("/")
        set_cookie(request, response, session)
        response.del_cookie(_cookie_name(request, SIGN_IN_COOKIE), path="/")
        return response
    await lockout.record_failure(admission)
    log.warning("admin sign-in failed from %s", _peer(request))
    message = "Wrong password." if site.password.is_set() else "No admin password is set."
    return _sign_in_form(request, 403, message)


@signed_in
async def sign_out(request: web.Request, session: Session) -> web.StreamResponse:
    """POST /logout: end the session."""
    form = await read_form(request)
    check_csrf(session, form.get("csrf"))
    request.app[SITE].sessions.end(session)
    response = redirect("/login")
    response.del_cookie(_cookie_name(request), path="/")
    return response
