"""Enrolment from the page: a pasted otpauth:// URI, or an uploaded (or dropped) QR screenshot.

The camera needs no route of its own: the page's script reads the QR code in the browser and
puts its text in the paste form. Everything is checked before anything is stored, and a
failure leaves the roster and the secret store as they were.
"""

import asyncio
import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from multidict import MultiDictProxy
from PIL import Image

from totpd.admin.auth import signed_in
from totpd.admin.forms import Upload, check_csrf, read_form, read_upload
from totpd.admin.pages import redirect
from totpd.admin.sessions import Session, Tone
from totpd.admin.site import MAX_IMAGE_PIXELS, SITE
from totpd.config import Config
from totpd.enrol import Enrolment, parse_image, parse_text
from totpd.enrol.commit import store_enrolments
from totpd.enrol.qr import FORMATS
from totpd.errors import AdminRefused, EnrolError, RosterError
from totpd.roster import Roster, RosterFile
from totpd.secrets import open_store
from totpd.users import MAX_ACCOUNTS_PER_USER

log = logging.getLogger("totpd.admin")


@contextlib.contextmanager
def _image_file(image: bytes) -> Iterator[Path]:
    """The upload as a file for the decoder: in memory (memfd) where the OS allows."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("totpd-upload", os.MFD_CLOEXEC)
        try:
            os.write(fd, image)
            yield Path(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile(prefix="totpd-upload-") as file:  # pragma: no cover
        file.write(image)
        file.flush()
        yield Path(file.name)


def _check_size(path: Path) -> None:
    """Refuse images too large to decode here, from the header alone (nothing is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as image:
                pixels = image.width * image.height
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        pixels = MAX_IMAGE_PIXELS + 1
    except (OSError, ValueError, SyntaxError):
        return  # not an image, or damaged: parse_image says so in its own words
    if pixels > MAX_IMAGE_PIXELS:
        raise EnrolError(
            f"the image is too large to decode ({pixels // 1_000_000} megapixels; the limit is"
            f" {MAX_IMAGE_PIXELS // 1_000_000}): crop the screenshot to the QR code"
        )


def decode_image(image: bytes) -> list[Enrolment]:
    """The accounts in the QR code(s) of an uploaded image; EnrolError says what is wrong."""
    with _image_file(image) as path:
        try:
            _check_size(path)
            return parse_image(path)
        except EnrolError as exc:
            # parse_image names the file; here that is a meaningless /proc path.
            raise EnrolError(str(exc).removeprefix(f"{path}: ")) from None


def _not_enrolled(status: int, exc: Exception) -> AdminRefused:
    return AdminRefused(status, f"Not enrolled: {str(exc).rstrip('.')}.")


def _chosen(enrolments: list[Enrolment], name: str, label: str) -> list[Enrolment]:
    if not name and not label:
        return enrolments
    if len(enrolments) != 1:
        raise EnrolError(
            f"this holds {len(enrolments)} accounts: leave the name and label empty to enrol"
            " them all under their own names"
        )
    only = enrolments[0]
    return [only.renamed(name or only.account.name, label or None)]


def _with_users(roster: Roster, names: list[str], users: list[str]) -> Roster:
    """`roster` with each of `users` also hearing the accounts `names`."""
    for user_name in users:
        user = roster.users.get(user_name)
        if user is None:
            raise RosterError(f"no user {user_name!r}")
        accounts = user.accounts + tuple(n for n in names if n not in user.accounts)
        if len(accounts) > MAX_ACCOUNTS_PER_USER:
            raise RosterError(
                f"{user_name} would hear {len(accounts)} accounts; the keypad menu holds"
                f" {MAX_ACCOUNTS_PER_USER}"
            )
        roster = roster.with_user(replace(user, accounts=accounts))
    return roster


def enrol(config: Config, enrolments: list[Enrolment], users: list[str]) -> list[str]:
    """Store every enrolment or none, and let `users` hear them; check it all first."""
    roster = RosterFile(config.paths.state_dir)
    names = [e.account.name for e in enrolments]
    planned = roster.current()
    for enrolment in enrolments:
        if enrolment.account.name not in planned.accounts:
            planned = planned.with_account(enrolment.account)
    _with_users(planned, names, users)  # raises now, before anything is stored
    store_enrolments(enrolments, open_store(config), roster)
    if users:
        roster.update(lambda now: _with_users(now, names, users))
    return names


async def _enrol_and_report(
    request: web.Request, session: Session, fields: MultiDictProxy[str], found: list[Enrolment]
) -> web.StreamResponse:
    site = request.app[SITE]
    name = fields.get("name", "").strip()
    label = fields.get("label", "").strip()
    users = [u for u in fields.getall("users", []) if u]
    try:
        chosen = _chosen(found, name, label)
        names = await asyncio.to_thread(enrol, site.services.config, chosen, users)
    except EnrolError as exc:
        raise _not_enrolled(400, exc) from None
    except RosterError as exc:
        raise _not_enrolled(409, exc) from None
    log.info(
        "admin page enrolled %s (users: %s)",
        ", ".join(names),
        ", ".join(users) or "none",
        extra={"fields": {"ACCOUNT": ",".join(names), "OUTCOME": "enrolled"}},
    )
    heard_by = f", heard by {', '.join(users)}" if users else " (no user hears it yet)"
    session.tell(Tone.OK, f"Enrolled {', '.join(names)}{heard_by}.")
    return redirect("/")


@signed_in
async def enrol_text(request: web.Request, session: Session) -> web.StreamResponse:
    """POST /enrol/text: a pasted otpauth:// URI (or export URI, or base32 secret)."""
    form = await read_form(request)
    check_csrf(session, form.get("csrf"))
    text = form.get("uri", "")
    try:
        found = parse_text(text)
    except EnrolError as exc:
        raise _not_enrolled(400, exc) from None
    if not form.get("name", "").strip() and not any("://" in line for line in text.splitlines()):
        raise AdminRefused(400, "Not enrolled: a bare secret needs a name (and a spoken label).")
    return await _enrol_and_report(request, session, form, found)


@signed_in
async def enrol_image(request: web.Request, session: Session) -> web.StreamResponse:
    """POST /enrol/image: a screenshot or photo with a QR code, decoded here."""
    upload: Upload = await read_upload(request)
    check_csrf(session, upload.fields.get("csrf"))
    if not upload.image:
        raise AdminRefused(400, "Not enrolled: choose an image file first.")
    site = request.app[SITE]
    try:
        async with site.decoding:
            found = await asyncio.to_thread(decode_image, upload.image)
    except EnrolError as exc:
        raise _not_enrolled(400, exc) from None
    return await _enrol_and_report(request, session, MultiDictProxy(upload.fields), found)
