"""Accounts and their one-time codes: RFC 6238 TOTP and RFC 4226 HOTP, via pyotp.

Steam Guard codes are TOTP with another last step: the 31-bit value is written in five
characters of Steam's 26-character alphabet instead of decimal digits. Everything here is
pure: the secret and the time are arguments, never looked up.
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pyotp

from totpd.errors import EnrolError
from totpd.printable import code_point, strip_unprintable, unprintable_in

ALGORITHMS: dict[str, Any] = {
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_LABEL_CHARS = 60
MIN_DIGITS, MAX_DIGITS = 5, 10
STEAM_ALPHABET = "23456789BCDFGHJKMNPQRTVWXY"
STEAM_CHARS = 5


class Kind(StrEnum):
    """Time-based (RFC 6238) or counter-based (RFC 4226)."""

    TOTP = "totp"
    HOTP = "hotp"


class Encoder(StrEnum):
    """How the truncated HMAC value becomes the code: decimal digits, or Steam's letters."""

    DIGITS = "digits"
    STEAM = "steam"


@dataclass(frozen=True)
class Account:
    """An enrolled account: everything about it but its secret, which lives in the secret store.

    Every route in (URI, export, QR code, admin page, backup) builds one, so the text rules hold
    here: the name is a-z, 0-9 and ._- (it names files and metrics); a spoken label with an
    unprintable character (totpd.printable) is refused, since the voice and every screen must
    say what the admin typed or saw, and enrolment cleans labels it derives before they get
    here; the issuer, never spoken and copied from a QR code, keeps only its printable
    characters.
    """

    name: str
    label: str
    kind: Kind = Kind.TOTP
    algorithm: str = "SHA1"
    digits: int = 6
    period_s: int = 30
    counter: int = 0
    issuer: str = ""
    encoder: Encoder = Encoder.DIGITS

    def __post_init__(self) -> None:
        try:
            # The directory file stores the encoder as its plain string value.
            object.__setattr__(self, "encoder", Encoder(self.encoder))
        except ValueError:
            raise EnrolError("the code encoder must be digits or steam") from None
        if not NAME_PATTERN.fullmatch(self.name):
            raise EnrolError(
                f"account name {self.name!r} must be 1-64 of a-z, 0-9, '.', '_', '-',"
                " starting with a letter or digit"
            )
        hidden = unprintable_in(self.label)
        if hidden is not None:
            raise EnrolError(
                f"spoken label holds an unprintable character ({code_point(hidden)}): use"
                " letters, digits, punctuation and spaces"
            )
        if not self.label.strip() or len(self.label) > MAX_LABEL_CHARS:
            raise EnrolError(f"spoken label must be 1-{MAX_LABEL_CHARS} characters")
        # Stripped first, then spaced: a dropped character must not leave a stray space behind.
        object.__setattr__(self, "issuer", " ".join(strip_unprintable(self.issuer).split()))
        if self.algorithm not in ALGORITHMS:
            raise EnrolError(
                f"unsupported algorithm {self.algorithm!r}; use SHA1, SHA256 or SHA512"
            )
        if not MIN_DIGITS <= self.digits <= MAX_DIGITS:
            raise EnrolError(f"digits must be {MIN_DIGITS} to {MAX_DIGITS}, not {self.digits}")
        if self.period_s < 1:
            raise EnrolError(f"period must be at least 1 second, not {self.period_s}")
        if self.counter < 0:
            raise EnrolError(f"counter must not be negative, not {self.counter}")
        if self.encoder is Encoder.STEAM and (
            self.kind is not Kind.TOTP or self.algorithm != "SHA1" or self.digits != STEAM_CHARS
        ):
            raise EnrolError(f"Steam codes are time-based, SHA1 and {STEAM_CHARS} characters")

    @property
    def type_name(self) -> str:
        """What kind of code this is, as shown to the sysadmin: totp, hotp or steam."""
        return Encoder.STEAM.value if self.encoder is Encoder.STEAM else self.kind.value


@dataclass(frozen=True)
class Reading:
    """What the caller hears for one account: the code and how long it lasts.

    `wait_s` > 0 means the current code was about to die, so `digits` is the next period's
    code, which becomes valid after `wait_s` seconds. `seconds_left` is None for HOTP.
    """

    digits: str
    seconds_left: int | None
    wait_s: int = 0


def normalize_base32(text: str) -> str:
    """Return a canonical base32 secret: upper case, no spaces or dashes, padded.

    Raises EnrolError, without echoing the input, when it is not valid base32.
    """
    compact = re.sub(r"[\s-]+", "", text).upper().rstrip("=")
    if not compact:
        raise EnrolError("the secret is empty")
    padded = compact + "=" * (-len(compact) % 8)
    try:
        raw = base64.b32decode(padded, casefold=False)
    except (binascii.Error, ValueError):
        raise EnrolError("the secret is not valid base32 (letters A-Z and digits 2-7)") from None
    if len(raw) < 10:
        raise EnrolError("the secret is too short: at least 80 bits (16 base32 characters)")
    return padded


class _HOTP(pyotp.HOTP):
    # Many real services (and Google Authenticator exports) use 80-bit secrets; pyotp's
    # default floor of 112 bits would refuse codes for accounts that work everywhere else.
    min_secret_length_bits = 80


def steam_code(value: int) -> str:
    """Steam's encoding of a truncated HMAC value: base 26, least significant character first."""
    chars = []
    for _ in range(STEAM_CHARS):
        value, index = divmod(value, len(STEAM_ALPHABET))
        chars.append(STEAM_ALPHABET[index])
    return "".join(chars)


def hotp_at(account: Account, secret: str, counter: int) -> str:
    """The RFC 4226 code for `counter` (or, for Steam, its five characters)."""
    digest = ALGORITHMS[account.algorithm]
    # The truncated value is below 2**31, so pyotp's 10-digit code is all of it: Steam encodes
    # that, and a d-digit code is its last d digits (value mod 10**d). pyotp alone refuses 5.
    value = _HOTP(secret, digits=MAX_DIGITS, digest=digest).generate_otp(counter)
    if account.encoder is Encoder.STEAM:
        return steam_code(int(value))
    return value[-account.digits :]


def totp_at(account: Account, secret: str, unix_s: float) -> str:
    """The RFC 6238 code valid at `unix_s`: HOTP over the number of whole periods since 0.

    Computed directly rather than with pyotp.TOTP, which caps the period at 120 s; the spec
    allows any period.
    """
    return hotp_at(account, secret, int(unix_s) // account.period_s)


def reading_at(account: Account, secret: str, unix_s: float, min_seconds_left: int) -> Reading:
    """The code to read out at `unix_s`, never one about to die.

    With fewer than `min_seconds_left` seconds left in the period, the caller is told to wait
    for the next period and hears that period's code instead. HOTP uses `account.counter`.
    """
    if account.kind is Kind.HOTP:
        return Reading(hotp_at(account, secret, account.counter), seconds_left=None)
    seconds_left = account.period_s - int(unix_s) % account.period_s
    if seconds_left >= min_seconds_left:
        return Reading(totp_at(account, secret, unix_s), seconds_left=seconds_left)
    next_period_s = unix_s + seconds_left
    return Reading(
        totp_at(account, secret, next_period_s), seconds_left=account.period_s, wait_s=seconds_left
    )
