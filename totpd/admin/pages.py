"""The pages: templates (auto-escaped), and the home page with its lists.

The lists show what the roster holds about accounts and users, and the lockouts now in
force. Secrets never reach a template: they live in the secret store, which no page reads.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from aiohttp import web

from totpd import phone
from totpd.admin.sessions import Notice, Session, Tone
from totpd.admin.site import SITE
from totpd.errors import LockoutUnavailable, TotpdError
from totpd.lockout_windows import Layer, LockState
from totpd.otp import Kind
from totpd.roster import Roster
from totpd.services import Services
from totpd.users import User

log = logging.getLogger("totpd.admin")


def create_templates() -> jinja2.Environment:
    """The page templates; every value is HTML-escaped unless a template says otherwise."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("totpd.admin", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """An HTML response from `template`."""
    html = request.app[SITE].templates.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def redirect(location: str) -> web.Response:
    """A 303 See Other to `location`: after a form post, the browser GETs the next page."""
    return web.Response(status=303, headers={"Location": location})


@dataclass(frozen=True)
class AccountRow:
    """One account as listed: everything but its secret."""

    name: str
    label: str
    kind: str
    algorithm: str
    digits: int
    timing: str
    users: str


@dataclass(frozen=True)
class UserRow:
    """One user as listed: never a PIN hash; of a duress PIN, only whether there is one (and
    whether it freezes the codes)."""

    name: str
    number: int
    accounts: str
    callers: str
    duress: str


def account_rows(roster: Roster) -> list[AccountRow]:
    """Every account, with the users who may hear it."""
    rows = []
    for account in roster.accounts.values():
        users = [u.name for u in roster.users.values() if account.name in u.accounts]
        timing = (
            f"every {account.period_s} s"
            if account.kind is Kind.TOTP
            else f"counter {account.counter}"
        )
        rows.append(
            AccountRow(
                name=account.name,
                label=account.label,
                kind=account.type_name.upper(),
                algorithm=account.algorithm,
                digits=account.digits,
                timing=timing,
                users=", ".join(users) or "nobody yet",
            )
        )
    return rows


def user_rows(roster: Roster) -> list[UserRow]:
    """Every user, with the accounts they hear and the numbers they may call from."""
    return [
        UserRow(
            name=user.name,
            number=user.number,
            accounts=", ".join(user.accounts) or "none",
            callers=", ".join(phone.shown(c) for c in user.callers) or "any number",
            duress=_duress(user),
        )
        for user in roster.users.values()
    ]


def _duress(user: User) -> str:
    if not user.duress_hash:
        return "no"
    return "yes, freezes the codes" if user.duress_freezes else "yes"


@dataclass(frozen=True)
class HeldRow:
    """One lockout window as listed: whose it is (the phone's or the admin page's), its layer,
    key and caller class, how full it is, and its storage key (what its Unlock posts). A
    freeze has no failures to count: `since` says when the duress PIN froze the user."""

    lockout: str
    layer: str
    key: str
    caller_class: str
    failures: int
    limit: int
    locked: bool
    until: str
    window: str
    since: str = ""


def _row(state: LockState) -> HeldRow:
    until = _local(state.until_s)
    return HeldRow(
        lockout="admin page" if state.scope else "phone",
        layer=state.layer.value,
        key=state.key,
        caller_class=f"{state.caller_class} callers" if state.caller_class else "",
        failures=state.failures,
        limit=state.limit,
        locked=state.locked,
        until=until,
        window=state.storage_key,
        since=_local(state.since_s) if state.layer is Layer.FROZEN else "",
    )


def _local(at_s: float) -> str:
    return datetime.fromtimestamp(at_s).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


async def lockout_rows(services: Services) -> list[HeldRow]:
    """Every key with failures on record (locked or not), global first."""
    try:
        return [_row(state) for state in await services.lockout.status()]
    except LockoutUnavailable:
        raise LockoutUnavailable("The lockout storage cannot be read right now.") from None


async def home_page(
    request: web.Request, session: Session, status: int = 200, error: str = ""
) -> web.Response:
    """The home page: the enrolment forms, the lists, and any messages."""
    site = request.app[SITE]
    notices = session.take_notices()
    if error:
        notices.append(Notice(Tone.ERROR, error))
    try:
        roster = site.services.roster.current()
    except TotpdError as exc:  # unreadable or damaged: say so, show nothing, change nothing
        log.error("admin page: the directory cannot be read: %s", exc)
        notices.append(Notice(Tone.ERROR, f"The directory cannot be read: {exc}"))
        roster, status = Roster(), 503
    try:
        held = await lockout_rows(site.services)
        lockout_error = ""
    except TotpdError as exc:
        held, lockout_error = [], str(exc)
    return render(
        request,
        "home.html",
        status=status,
        csrf_token=session.csrf_token,
        notices=notices,
        accounts=account_rows(roster),
        users=user_rows(roster),
        lockouts=held,
        lockout_error=lockout_error,
        max_upload_mb=site.max_upload_bytes >> 20,
    )


async def home(request: web.Request, session: Session) -> web.StreamResponse:
    """GET /: the home page."""
    return await home_page(request, session)
