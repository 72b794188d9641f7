"""The unlock buttons: the same `Lockout.unlock` that `totpd unlock` uses, on the daemon's own
instance (the list beside them comes from `Lockout.status`, as `totpd status` does).
"""

import logging

from aiohttp import web

from totpd.admin.auth import signed_in
from totpd.admin.forms import check_csrf, read_form
from totpd.admin.pages import redirect
from totpd.admin.sessions import Session, Tone
from totpd.admin.site import SITE
from totpd.errors import AdminRefused, LockoutUnavailable
from totpd.lockout import Layer

log = logging.getLogger("totpd.admin")


@signed_in
async def unlock(request: web.Request, session: Session) -> web.StreamResponse:
    """POST /lockouts/unlock: clear one caller's or user's failures, or (global) all of them."""
    form = await read_form(request)
    check_csrf(session, form.get("csrf"))
    layer_text, key = form.get("layer", ""), form.get("key", "")
    if layer_text not in Layer.__members__.values():
        raise AdminRefused(400, "Nothing was unlocked: unknown lockout layer.")
    layer = Layer(layer_text)
    lockout = request.app[SITE].services.lockout
    try:
        if layer is Layer.GLOBAL:
            cleared = await lockout.unlock()
        elif layer is Layer.CALLER:
            cleared = await lockout.unlock(caller=key)
        else:
            cleared = await lockout.unlock(user=key)
    except LockoutUnavailable:
        raise AdminRefused(
            503, "Nothing was unlocked: the lockout storage is unavailable."
        ) from None
    what = "every lockout" if layer is Layer.GLOBAL else f"{layer} {key}"
    log.warning(
        "admin page cleared %s (%d keys had failures)",
        what,
        len(cleared),
        extra={"fields": {"LAYER": layer.value, "OUTCOME": "unlocked"}},
    )
    session.tell(Tone.OK, f"Cleared {what}.")
    return redirect("/")
