"""Sign-in, sign-out and the session cookie.

The cookie carries only a random session id: HttpOnly, SameSite=Strict, and Secure (with the
`__Host-` prefix) when the page is served over TLS or through a TLS proxy on this machine.
Password guesses go through the same lockout layers as PINs, keyed by the browser's address
and a fixed name for the admin account, and no guess is checked while a layer is tripped.
"""

import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from totpd.admin.forms import check_csrf, read_form
from totpd.admin.pages import home_page, redirect, render
from totpd.admin.sessions import Session, Tone
from totpd.admin.site import SITE
from totpd.errors import AdminRefused, LockoutUnavailable

COOKIE = "totpd-admin"
SECURE_COOKIE = "__Host-totpd-admin"
LOCKOUT_USER = "password"  # in the admin lockout's own windows, apart from every caller's
EXPIRED = "Your session has expired. Sign in again; nothing was changed."

log = logging.getLogger("totpd.admin")

SessionHandler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def is_https(request: web.Request) -> bool:
    """True over TLS, or when a proxy on this machine says the browser used https."""
    if request.secure:
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "").strip().lower()
    return forwarded == "https" and _is_loopback(request.remote)


def _cookie_name(request: web.Request) -> str:
    return SECURE_COOKIE if is_https(request) else COOKIE


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    """Point the browser at `session`."""
    response.set_cookie(
        _cookie_name(request),
        session.id,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


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


def to_sign_in(request: web.Request, notice: str = "") -> web.Response:
    """Redirect to the sign-in page in a fresh anonymous session, with `notice` shown there."""
    session = request.app[SITE].sessions.new()
    if notice:
        session.tell(Tone.ERROR, notice)
    response = redirect("/login")
    set_cookie(request, response, session)
    return response


def signed_in(handler: SessionHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a handler that needs a signed-in session; others go to the sign-in page.

    A refusal is shown on the home page with its status; nothing has been changed by then.
    """

    async def guarded(request: web.Request) -> web.StreamResponse:
        session, had_cookie = current_session(request)
        if session is None or not session.signed_in:
            return to_sign_in(request, EXPIRED if had_cookie else "")
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
    if session is None:
        session = request.app[SITE].sessions.new()
    return _sign_in_form(request, session)


def _sign_in_form(
    request: web.Request, session: Session, status: int = 200, error: str = ""
) -> web.Response:
    site = request.app[SITE]
    notices = session.take_notices()
    response = render(
        request,
        "login.html",
        status=status,
        csrf_token=session.csrf_token,
        notices=notices,
        error=error,
        password_set=site.password.is_set(),
    )
    set_cookie(request, response, session)
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    """POST /login: check the token, the lockout, then the password (Argon2id, off the loop)."""
    site = request.app[SITE]
    session, had_cookie = current_session(request)
    if session is None:
        return to_sign_in(request, EXPIRED if had_cookie else "")
    try:
        form = await read_form(request)
        check_csrf(session, form.get("csrf"))
    except AdminRefused as exc:
        return _sign_in_form(request, session, exc.status, exc.message)
    lockout = site.services.admin_lockout
    try:
        # Counted before the check, as a PIN is: a crash mid-check still counts the guess.
        # Every browser arrives through the same tunnel from 127.0.0.1: one shared caller key.
        admission = await lockout.admit("", LOCKOUT_USER)
    except LockoutUnavailable:
        log.error("admin sign-in refused: lockout storage unavailable")
        return _sign_in_form(request, session, 503, "Sign-in is unavailable right now.")
    if admission.refused_by is not None:
        log.warning(
            "admin sign-in refused from %s: locked out (%s)", request.remote, admission.refused_by
        )
        return _sign_in_form(
            request,
            session,
            429,
            "Too many failed sign-ins. Wait, or clear the lockout with `totpd unlock`.",
        )
    if await site.password.verify(str(form.get("password", ""))):
        await lockout.give_back(admission)
        site.sessions.end(session)  # a new id at sign-in: a planted id is worth nothing
        fresh = site.sessions.new(password_version=site.password.version())
        log.info("admin signed in from %s", request.remote)
        response = redirect("/")
        set_cookie(request, response, fresh)
        return response
    await lockout.record_failure(admission)
    log.warning("admin sign-in failed from %s", request.remote)
    message = "Wrong password." if site.password.is_set() else "No admin password is set."
    return _sign_in_form(request, session, 403, message)


@signed_in
async def sign_out(request: web.Request, session: Session) -> web.StreamResponse:
    """POST /logout: end the session."""
    form = await read_form(request)
    check_csrf(session, form.get("csrf"))
    request.app[SITE].sessions.end(session)
    response = redirect("/login")
    response.del_cookie(_cookie_name(request), path="/")
    return response
