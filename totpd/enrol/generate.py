"""A fresh secret for an account totpd creates, shown as a QR code for an authenticator app.

The QR code (an otpauth:// URI) goes to the terminal as text, and to a PNG or SVG file when
asked; the file holds the secret, so it is written 0600 like every other secret file.
"""

import base64
import io
import secrets
from pathlib import Path

import segno

from totpd.enrol.enrolment import Enrolment
from totpd.errors import EnrolError
from totpd.files import write_atomic
from totpd.otp import Account

SECRET_BYTES = 20  # 160 bits, the HMAC-SHA1 block RFC 4226 recommends
QR_SUFFIXES = (".png", ".svg")


def new_secret() -> str:
    """A fresh random 160-bit secret, base32 (32 characters, no padding)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode()


def generate(account: Account) -> Enrolment:
    """`account` with a fresh secret."""
    return Enrolment(account, new_secret())


def _qr(uri: str) -> segno.QRCode:
    return segno.make(uri, error="m", micro=False)


def qr_text(uri: str) -> str:
    """A QR code of `uri` drawn with block characters, for a terminal."""
    out = io.StringIO()
    _qr(uri).terminal(out=out, compact=True, border=2)
    return out.getvalue()


def write_qr(uri: str, path: Path) -> None:
    """Write a QR code of `uri` to `path` (.png or .svg), readable by the owner only."""
    kind = path.suffix.lower()
    if kind not in QR_SUFFIXES:
        raise EnrolError(f"{path}: the QR file must end in .png or .svg")
    out = io.BytesIO()
    _qr(uri).save(out, kind=kind[1:], scale=8, border=4)
    try:
        write_atomic(path, out.getvalue(), mode=0o600)
    except OSError as exc:
        raise EnrolError(f"{path}: cannot write QR code: {exc.strerror}") from None
