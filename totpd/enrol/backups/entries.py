"""Checked reading of one backup entry: JSON values of the right type, then a `Found`.

Backup files are untrusted input: a number may arrive as a string, a boolean or 10**400, a
name as a list. Every refusal names the format and the entry's position, never its secret
(and never its issuer or name either, which the file's author chose).
"""

import json
from collections.abc import Callable
from typing import Any

from totpd.enrol.enrolment import Found
from totpd.errors import EnrolError
from totpd.otp import (
    ALGORITHMS,
    MAX_DIGITS,
    MIN_DIGITS,
    STEAM_CHARS,
    Encoder,
    Kind,
    normalize_base32,
)

Passphrase = Callable[[], str]  # asked for only when a file turns out to be encrypted
MAX_NUMBER = 2**63 - 1
MAX_PERIOD_S = 86400
TYPES = {"totp": (Kind.TOTP, Encoder.DIGITS), "hotp": (Kind.HOTP, Encoder.DIGITS)}
TYPES["steam"] = (Kind.TOTP, Encoder.STEAM)


def load_json(raw: bytes, what: str) -> Any:
    """The JSON document in `raw`; a clear refusal when it is truncated or not JSON at all."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        # json's ValueError covers bad UTF-8 too; RecursionError is a deeply nested bomb.
        raise EnrolError(f"{what}: the file is truncated or is not valid JSON") from None


def text(obj: dict[str, Any], key: str, where: str, default: str = "") -> str:
    """A string field (null or absent: `default`)."""
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise EnrolError(f"{where}: {key} is not text")
    return value


def number(obj: dict[str, Any], key: str, where: str, default: int) -> int:
    """A whole-number field (null or absent: `default`); booleans and floats are refused."""
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_NUMBER:
        raise EnrolError(f"{where}: {key} is not a whole number")
    return value


def member(obj: Any, key: str, kind: type, where: str) -> Any:
    """`obj[key]`, which must exist and be of `kind` (dict, list, str, ...)."""
    if not isinstance(obj, dict) or not isinstance(obj.get(key), kind):
        raise EnrolError(f"{where}: {key} is missing or malformed")
    return obj[key]


def found(
    where: str,
    *,
    issuer: str,
    account_name: str,
    secret: str,
    type_name: str,
    algorithm: str,
    digits: int,
    period_s: int,
    counter: int,
) -> Found:
    """One checked entry; refusals name `where` (format and position)."""
    if type_name.lower() not in TYPES:
        shown = type_name[:12] if type_name.isascii() and type_name.isprintable() else "?"
        raise EnrolError(
            f"{where}: {shown!r} codes are not supported (TOTP, HOTP and Steam are): remove"
            " that entry from the export, or import the others from another export"
        )
    kind, encoder = TYPES[type_name.lower()]
    algorithm = algorithm.upper().replace("-", "")
    if algorithm not in ALGORITHMS:
        raise EnrolError(f"{where}: unsupported algorithm (SHA1, SHA256 and SHA512 are)")
    if encoder is Encoder.STEAM:
        digits = STEAM_CHARS  # some apps write 5, some leave 6: Steam codes are 5 characters
    if not MIN_DIGITS <= digits <= MAX_DIGITS:
        raise EnrolError(f"{where}: digits must be {MIN_DIGITS} to {MAX_DIGITS}, not {digits}")
    if kind is Kind.TOTP and not 1 <= period_s <= MAX_PERIOD_S:
        raise EnrolError(f"{where}: the period must be 1 second to one day")
    try:
        secret = normalize_base32(secret)
    except EnrolError as exc:
        raise EnrolError(f"{where}: {exc}") from None
    return Found(
        issuer=" ".join(issuer.split()),
        account_name=account_name.strip(),
        secret=secret,
        kind=kind,
        algorithm=algorithm,
        digits=digits,
        period_s=period_s if kind is Kind.TOTP else 30,
        counter=counter if kind is Kind.HOTP else 0,
        encoder=encoder,
    )
