"""Google Authenticator's export: `otpauth-migration://offline?data=BASE64`.

`data` is a protobuf `MigrationPayload`, read here with a small hand-written decoder
(totpd.enrol.protowire) of the few fields that matter:

    MigrationPayload: 1 otp_parameters (repeated message), 2 version, 3 batch_size,
                      4 batch_index, 5 batch_id
    OtpParameters:    1 secret (bytes), 2 name, 3 issuer, 4 algorithm, 5 digits, 6 type,
                      7 counter

Google Authenticator exports TOTP with a 30-second period only. A large export is split over
several QR codes ("batches"); each one is a complete payload and imports on its own.
"""

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from totpd.enrol.enrolment import Found
from totpd.enrol.protowire import LENGTH_DELIMITED, VARINT, fields
from totpd.errors import EnrolError, WireError
from totpd.otp import Kind

SCHEME = "otpauth-migration"
MAX_DATA_CHARS = 64 * 1024
# The enums of the export format (0 is "unspecified": the app's default).
ALGORITHMS = {0: "SHA1", 1: "SHA1", 2: "SHA256", 3: "SHA512"}
ALGORITHM_MD5 = 4
DIGITS = {0: 6, 1: 6, 2: 8}
KINDS = {0: Kind.TOTP, 1: Kind.HOTP, 2: Kind.TOTP}


@dataclass(frozen=True)
class Batch:
    """Which part of a multi-QR export this payload is (1-based), and of how many."""

    index: int
    size: int


def _data(uri: str) -> bytes:
    try:
        parts = urlsplit(uri.strip())
    except ValueError:
        raise EnrolError("not a well-formed otpauth-migration:// URI") from None
    if parts.scheme.lower() != SCHEME or parts.netloc.lower() != "offline":
        raise EnrolError("not an otpauth-migration://offline URI")
    values = [v for k, _, v in (p.partition("=") for p in parts.query.split("&")) if k == "data"]
    if len(values) != 1 or not values[0]:
        raise EnrolError("Google Authenticator export: expected one data parameter")
    # Not unquote_plus: '+' is a base64 digit, and some tools leave it unescaped.
    text = unquote(values[0]).strip()
    if len(text) > MAX_DATA_CHARS:
        raise EnrolError("Google Authenticator export: data parameter is too large")
    text = text.replace(" ", "+").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise EnrolError("Google Authenticator export: data is not valid base64") from None


def _string(value: int | bytes, what: str) -> str:
    if not isinstance(value, bytes):
        raise WireError(f"{what} is not a string")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(f"{what} is not UTF-8") from None


def _number(value: int | bytes, what: str) -> int:
    if not isinstance(value, int):
        raise WireError(f"{what} is not a number")
    return value


def _otp_parameters(message: bytes, position: int) -> Found:
    secret = b""
    name = issuer = ""
    algorithm = digits = kind = counter = 0
    for number, _wire_type, value in fields(message):
        if number == 1:
            if not isinstance(value, bytes):
                raise WireError("secret is not bytes")
            secret = value
        elif number == 2:
            name = _string(value, "name")
        elif number == 3:
            issuer = _string(value, "issuer")
        elif number == 4:
            algorithm = _number(value, "algorithm")
        elif number == 5:
            digits = _number(value, "digits")
        elif number == 6:
            kind = _number(value, "type")
        elif number == 7:
            counter = _number(value, "counter")
    where = f"Google Authenticator export, account {position}"
    if not secret:
        raise EnrolError(f"{where}: no secret")
    if algorithm == ALGORITHM_MD5:
        raise EnrolError(f"{where}: MD5 codes are not supported (SHA1, SHA256, SHA512 are)")
    if algorithm not in ALGORITHMS or digits not in DIGITS or kind not in KINDS:
        raise EnrolError(f"{where}: unknown algorithm, digit count or type")
    # The name often repeats the issuer as a prefix ("GitHub:alice"); keep the account part.
    prefix, colon, rest = name.partition(":")
    if colon and (not issuer or prefix.strip() == issuer.strip()):
        issuer, name = issuer or prefix.strip(), rest
    return Found(
        issuer=" ".join(issuer.split()),
        account_name=name.strip(),
        secret=base64.b32encode(secret).decode(),
        kind=KINDS[kind],
        algorithm=ALGORITHMS[algorithm],
        digits=DIGITS[digits],
        period_s=30,
        counter=counter if KINDS[kind] is Kind.HOTP else 0,
    )


def parse_migration(uri: str) -> tuple[list[Found], Batch]:
    """Every account in one export URI, and which batch of the export it is."""
    payload = _data(uri)
    found: list[Found] = []
    batch_index, batch_size = 0, 1
    try:
        for number, wire_type, value in fields(payload):
            if number == 1:
                if wire_type != LENGTH_DELIMITED or not isinstance(value, bytes):
                    raise WireError("account is not a message")
                found.append(_otp_parameters(value, len(found) + 1))
            elif number == 3 and wire_type == VARINT:
                batch_size = _number(value, "batch size")
            elif number == 4 and wire_type == VARINT:
                batch_index = _number(value, "batch index")
    except WireError as exc:
        raise EnrolError(f"Google Authenticator export: malformed data ({exc})") from None
    if not found:
        raise EnrolError("Google Authenticator export: it holds no accounts")
    return found, Batch(index=batch_index + 1, size=max(batch_size, 1))
