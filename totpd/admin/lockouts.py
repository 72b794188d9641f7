"""The unlock buttons: each row's clears exactly the window it lists (the phone's or the admin
page's), as `totpd unlock` names one; a last button clears every window, as `totpd unlock`
does alone. The list beside them comes from `Lockout.status`, as `totpd status` does.
"""

import logging

from aiohttp import web

from totpd.admin.auth import signed_in
from totpd.admin.forms import check_csrf, read_form
from totpd.admin.pages import redirect
from totpd.admin.sessions import Session, Tone
from totpd.admin.site import SITE
from totpd.errors import AdminRefused, LockoutUnavailable

log = logging.getLogger("totpd.admin")

EVERYTHING = "everything"  # the value of the form field `window` that clears every window


@signed_in
async def unlock(request: web.Request, session: Session) -> web.StreamResponse:
    """POST /lockouts/unlock: clear the window the form names (by its storage key, which must
    be one listed now), or every window."""
    form = await read_form(request)
    check_csrf(session, form.get("csrf"))
    window = str(form.get("window", ""))
    lockout = request.app[SITE].services.lockout
    try:
        if window == EVERYTHING:
            cleared = await lockout.unlock()
            what = "every lockout, the phone's and the admin page's"
        else:
            found = await lockout.unlock_window(window)
            if found is None:
                raise AdminRefused(
                    400,
                    "Nothing was unlocked: no lockout with failures on record has that name"
                    " (it may have expired, or been cleared meanwhile).",
                )
            cleared, what = [found], found.window.describe()
    except LockoutUnavailable:
        raise AdminRefused(
            503, "Nothing was unlocked: the lockout storage is unavailable."
        ) from None
    log.warning(
        "admin page cleared %s (%d windows had failures)",
        what,
        len(cleared),
        extra={"fields": {"OUTCOME": "unlocked"}},
    )
    session.tell(Tone.OK, f"Cleared {what}.")
    return redirect("/")
