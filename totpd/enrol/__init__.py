"""Enrolment: turn what the sysadmin has into accounts and their secrets.

Routes in: an `otpauth://totp|hotp` URI, a bare base32 secret, Google Authenticator's
`otpauth-migration://` export (several accounts at once), or an image file with a QR code of
any of these URIs. Every route ends in a list of `Enrolment` (an Account and its secret).
"""

import logging
from pathlib import Path

from totpd.enrol.enrolment import Enrolment, Found
from totpd.enrol.migration import SCHEME as MIGRATION_SCHEME
from totpd.enrol.migration import parse_migration
from totpd.enrol.naming import name_accounts
from totpd.enrol.uri import SCHEME as URI_SCHEME
from totpd.enrol.uri import STEAM_SCHEME, parse_uri
from totpd.errors import EnrolError

__all__ = ["Enrolment", "found_in_uris", "parse_image", "parse_images", "parse_text"]

MAX_TEXT_CHARS = 1 << 20
log = logging.getLogger(__name__)


def _scheme(text: str) -> str:
    return text.partition(":")[0].strip().lower()


def _found_in_uri(uri: str) -> list[Found]:
    scheme = _scheme(uri)
    if scheme in (URI_SCHEME, STEAM_SCHEME):
        return [parse_uri(uri)]
    if scheme == MIGRATION_SCHEME:
        found, batch = parse_migration(uri)
        if batch.size > 1:
            log.warning(
                "this Google Authenticator export is QR code %d of %d: import the others too",
                batch.index,
                batch.size,
            )
        return found
    raise EnrolError("expected an otpauth:// or otpauth-migration:// URI")


def found_in_uris(text: str) -> list[Found]:
    """The entries of otpauth://, steam:// and export URIs, one per line; errors name the line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise EnrolError("no otpauth:// URI given")
    found: list[Found] = []
    for number, line in enumerate(lines, start=1):
        try:
            found.extend(_found_in_uri(line))
        except EnrolError as exc:
            raise EnrolError(f"line {number}: {exc}" if len(lines) > 1 else str(exc)) from None
    return found


def parse_text(text: str) -> list[Enrolment]:
    """Accounts from text: otpauth URIs (one per line), an export URI, or a bare base32 secret.

    A bare secret comes back as an account named "account": the caller renames it.
    """
    if len(text) > MAX_TEXT_CHARS:
        raise EnrolError("the input is too large to be an OTP URI or secret")
    if not text.strip():
        raise EnrolError("no otpauth:// URI or base32 secret given")
    if "://" not in text:
        return name_accounts([Found(issuer="", account_name="", secret=text)])
    return name_accounts(found_in_uris(text))


def _found_in_image(path: Path) -> list[Found]:
    try:
        from totpd.enrol.qr import read_qr_texts  # image libraries load only when needed
    except ModuleNotFoundError:  # the `qr` extra (zxing-cpp, Pillow) is not installed
        raise EnrolError("QR decoding is not installed: paste the otpauth link instead") from None

    found: list[Found] = []
    for text in read_qr_texts(path):
        if _scheme(text) not in (URI_SCHEME, STEAM_SCHEME, MIGRATION_SCHEME):
            raise EnrolError(f"{path}: the QR code holds something other than an otpauth:// URI")
        try:
            found.extend(_found_in_uri(text))
        except EnrolError as exc:
            raise EnrolError(f"{path}: {exc}") from None
    return found


def parse_image(path: Path) -> list[Enrolment]:
    """Accounts from the QR code(s) in an image file: otpauth or export URIs."""
    return name_accounts(_found_in_image(path))


def parse_images(paths: list[Path]) -> list[Enrolment]:
    """Accounts from several images (an export split over QR codes), named as one import."""
    return name_accounts([found for path in paths for found in _found_in_image(path)])
