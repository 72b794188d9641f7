"""Vonage's signed webhooks: verifying (and, for the emulator and tests, signing) them, and
parsing their payloads into typed values. Everything here is pure; the time is an argument.

Vonage signs each webhook with an HS256 JWT keyed by the account's signature secret; its claims
carry `iat`, `jti`, `payload_hash` (the SHA-256 of the body) and `application_id`, but no `exp`:
freshness is ours to enforce. Verification fails closed, in this order: token present, header
`alg` is HS256, signature, `iat` fresh, `payload_hash` matches the raw body, `application_id`
(when configured). The `jti` replay check needs shared state, so the web layer does it last.
"""

import binascii
import functools
import hashlib
import hmac
import json
import re
import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from totpd.errors import WebhookRejected
from totpd.keypad import MAX_DIGITS

DIGITS_PATTERN = re.compile(rf"[0-9*#]{{0,{MAX_DIGITS}}}")
UUID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,64}")
CALLER_PATTERN = re.compile(r"\+?[0-9]{1,20}")
FINAL_STATUSES = frozenset(
    {
        "completed",
        "busy",
        "cancelled",
        "unanswered",
        "disconnected",
        "rejected",
        "failed",
        "timeout",
    }
)
# A compact JWS: three base64url segments; the signature may be empty (then `alg` is refused).
TOKEN_PATTERN = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)")
_FROM_BASE64URL = bytes.maketrans(b"-_", b"+/")
_NUMBERS = (int, float)
MAX_JTI = 128


def get_payload(query: Iterable[tuple[str, str]]) -> bytes:
    """The bytes Vonage hashes for a GET webhook: its query as compact JSON, in arrival order."""
    members = ",".join(
        f"{json.dumps(k, ensure_ascii=False)}:{json.dumps(v, ensure_ascii=False)}" for k, v in query
    )
    return f"{{{members}}}".encode()


def verify_webhook(
    authorization: str | None,
    payload: bytes,
    secret: bytes,
    now_s: float,
    max_age_s: int,
    skew_s: int,
    application_id: str = "",
) -> str:
    """Check a webhook's signed JWT against the raw `payload` and return its `jti` (for the
    replay check); raise WebhookRejected(reason)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise WebhookRejected("unsigned")
    # The JWS is decoded here, once, rather than by a general JWT library: HS256 is the only
    # algorithm there is to accept, and this is the hot path of every webhook.
    segments = TOKEN_PATTERN.fullmatch(token)
    if segments is None:
        raise WebhookRejected("malformed_token")
    refusal = _header_refusal(segments[1])
    if refusal:
        raise WebhookRejected(refusal)
    mac = _keyed_hmac(secret).copy()
    mac.update(token[: segments.end(2)].encode())
    if not hmac.compare_digest(_base64url(segments[3]), mac.digest()):
        raise WebhookRejected("bad_signature")
    claims = _json_segment(segments[2])
    iat = claims.get("iat")
    if not isinstance(iat, _NUMBERS) or isinstance(iat, bool):  # a JSON true is no time
        raise WebhookRejected("malformed_token")
    if iat > now_s + skew_s:
        raise WebhookRejected("future_token")
    if iat < now_s - max_age_s - skew_s:
        raise WebhookRejected("stale_token")
    payload_hash = claims.get("payload_hash")
    if not isinstance(payload_hash, str) or not hmac.compare_digest(
        payload_hash.lower(), hashlib.sha256(payload).hexdigest()
    ):
        raise WebhookRejected("bad_payload_hash")
    if application_id and not hmac.compare_digest(
        str(claims.get("application_id", "")), application_id
    ):
        raise WebhookRejected("wrong_application")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI:
        raise WebhookRejected("malformed_token")
    return jti


@functools.lru_cache(maxsize=4)
def _keyed_hmac(secret: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 keyed with `secret`, to copy: the key schedule is done once, not per token."""
    return hmac.new(secret, digestmod=hashlib.sha256)


@functools.lru_cache(maxsize=8)
def _header_refusal(segment: str) -> str:
    """Why a JWS header is refused, or "" for HS256. Vonage sends the same header every time."""
    try:
        header = _json_segment(segment)
    except WebhookRejected as exc:
        return exc.reason
    if header.get("alg") != "HS256":
        return "bad_algorithm"
    if "crit" in header:  # no JWS extension is understood here (RFC 7515, 4.1.11)
        return "malformed_token"
    return ""


def _base64url(segment: str) -> bytes:
    """Strict base64url without padding (the alphabet was checked by TOKEN_PATTERN)."""
    padded = segment.encode().translate(_FROM_BASE64URL) + b"=" * (-len(segment) % 4)
    try:
        return binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error:
        raise WebhookRejected("malformed_token") from None


def _json_segment(segment: str) -> dict[str, Any]:
    """A JWS header or claims set: a JSON object."""
    try:
        document = orjson.loads(_base64url(segment))
    except ValueError:  # orjson's errors are ValueErrors, nesting included (1,024 levels)
        raise WebhookRejected("malformed_token") from None
    if not isinstance(document, dict):
        raise WebhookRejected("malformed_token")
    return document


def sign_webhook(
    payload: bytes, secret: bytes, now_s: float, application_id: str, api_key: str = "totpd"
) -> str:
    """An `Authorization` header value for `payload`, signed as Vonage signs webhooks."""
    import jwt  # the emulator and tests sign; the daemon only verifies, without PyJWT

    claims = {
        "iat": int(now_s),
        "jti": str(uuidlib.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(payload).hexdigest(),
        "api_key": api_key,
        "application_id": application_id,
    }
    return "Bearer " + jwt.encode(claims, secret, algorithm="HS256")


# Payloads. Bad input raises WebhookRejected(reason, 400): a clear 4xx, never a crash.
@dataclass(frozen=True)
class CallStart:
    """The answer webhook: a call arrived."""

    uuid: str
    caller: str  # "" when withheld or not a phone number


@dataclass(frozen=True)
class InputResult:
    """An input webhook: what the caller typed or said."""

    uuid: str
    digits: str
    timed_out: bool
    speech: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallStatus:
    """The event webhook: call progress."""

    uuid: str
    status: str

    @property
    def is_final(self) -> bool:
        """True when the call is over and its state can go."""
        return self.status in FINAL_STATUSES


def _bad(reason: str) -> WebhookRejected:
    return WebhookRejected(reason, status=400)


def parse_json(body: bytes) -> dict[str, Any]:
    """A JSON object from a POST body."""
    try:
        document = orjson.loads(body)
    except ValueError:
        raise _bad("malformed_json") from None
    if not isinstance(document, dict):
        raise _bad("malformed_json")
    return document


def _uuid(fields: dict[str, Any]) -> str:
    value = fields.get("uuid")
    if not isinstance(value, str) or not UUID_PATTERN.fullmatch(value):
        raise _bad("bad_uuid")
    return value


def parse_answer(fields: dict[str, Any]) -> CallStart:
    """The answer webhook's parameters (query for GET, JSON body for POST)."""
    caller = fields.get("from")
    number = caller if isinstance(caller, str) and CALLER_PATTERN.fullmatch(caller) else ""
    return CallStart(uuid=_uuid(fields), caller=number.removeprefix("+"))


def _dtmf(value: Any) -> tuple[str, bool]:
    if value is None:
        return "", True
    if isinstance(value, str):  # the pre-2020 shape: a plain string of digits
        digits, timed_out = value, value == ""
    elif isinstance(value, dict):
        digits, timed_out = value.get("digits", ""), value.get("timed_out", False)
        if digits is None:
            digits = ""
    else:
        raise _bad("bad_dtmf")
    if not isinstance(digits, str) or not isinstance(timed_out, bool):
        raise _bad("bad_dtmf")
    if not DIGITS_PATTERN.fullmatch(digits):
        raise _bad("bad_dtmf")
    return digits, timed_out


def _speech(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _bad("bad_speech")
    results = value.get("results") or []
    if not isinstance(results, list) or len(results) > 10:
        raise _bad("bad_speech")
    texts = []
    for result in results:
        text = result.get("text") if isinstance(result, dict) else None
        if not isinstance(text, str) or len(text) > 200:
            raise _bad("bad_speech")
        texts.append(text)
    return tuple(texts)


def parse_input(fields: dict[str, Any]) -> InputResult:
    """An input webhook's JSON body, in the current or the pre-2020 shape."""
    digits, timed_out = _dtmf(fields.get("dtmf"))
    return InputResult(_uuid(fields), digits, timed_out, _speech(fields.get("speech")))


def parse_status(fields: dict[str, Any]) -> CallStatus:
    """An event webhook's JSON body."""
    status = fields.get("status")
    if not isinstance(status, str) or len(status) > 32:
        raise _bad("bad_status")
    return CallStatus(_uuid(fields), status)
