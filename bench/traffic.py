"""Pre-built webhook requests for wrk: genuine signed ones, and forged ones for the flood.

Each line of a request file is METHOD <tab> PATH <tab> AUTHORIZATION <tab> BODY (compact JSON,
so it has no tab or newline). Genuine requests are signed exactly as Vonage signs them, each
with its own `jti` and call uuid, so totpd runs every check and creates a call per request.
"""

import base64
import hashlib
import hmac
import json
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from totpd import vonage

CALLER = "447700900001"
CALLED = "447700900999"


@dataclass(frozen=True)
class Signer:
    """What Vonage signs with for the application under test."""

    secret: bytes
    application_id: str


@dataclass(frozen=True)
class Request:
    """One webhook request as wrk sends it."""

    method: str
    path: str
    authorization: str
    body: bytes

    def line(self) -> str:
        """The request as one line of a request file."""
        return f"{self.method}\t{self.path}\t{self.authorization}\t{self.body.decode()}\n"


def answer_body(call_uuid: str) -> bytes:
    """An answer webhook body (POST), as Vonage sends it for an inbound call."""
    fields = {
        "from": CALLER,
        "to": CALLED,
        "uuid": call_uuid,
        "conversation_uuid": f"CON-{call_uuid}",
        "region_url": "https://api-eu-1.vonage.com",
    }
    return json.dumps(fields, separators=(",", ":")).encode()


def event_body(call_uuid: str, status: str) -> bytes:
    """An event webhook body for a call's progress."""
    fields = {
        "from": CALLER,
        "to": CALLED,
        "uuid": call_uuid,
        "conversation_uuid": f"CON-{call_uuid}",
        "status": status,
        "direction": "inbound",
        "timestamp": "2026-11-22T10:00:00.000Z",
    }
    return json.dumps(fields, separators=(",", ":")).encode()


def signed(signer: Signer, method: str, path: str, body: bytes, now_s: float) -> Request:
    """A request signed as Vonage signs it (a fresh `jti` each time)."""
    token = vonage.sign_webhook(body, signer.secret, now_s, signer.application_id)
    return Request(method, path, token, body)


def signed_answers(signer: Signer, count: int) -> Iterator[Request]:
    """`count` signed answer webhooks (POST), each for a new call."""
    now_s = time.time()
    for _ in range(count):
        yield signed(signer, "POST", "/webhooks/answer", answer_body(str(uuidlib.uuid4())), now_s)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _token(header: dict[str, str], claims: dict[str, object], key: bytes) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"Bearer {signing_input}.{_b64(signature)}"


def forged(signer: Signer, count: int) -> Iterator[Request]:
    """`count` requests an attacker could send, cycling through the ways a forgery fails.

    Unsigned, garbage tokens, `alg: none`, a guessed secret, a captured token an hour old or
    ahead sent with another body, a body that does not match `payload_hash`, another
    application's token; aimed at every webhook. (A captured token sent with its own body
    would hear the clock goodbye, a 200: it is no forgery.)
    """
    now_s = time.time()
    paths = ("/webhooks/answer", "/webhooks/event", "/webhooks/input/pin")
    for n in range(count):
        path = paths[n % len(paths)]
        body = answer_body(str(uuidlib.uuid4()))
        claims: dict[str, object] = {
            "iat": int(now_s),
            "jti": str(uuidlib.uuid4()),
            "iss": "Vonage",
            "payload_hash": hashlib.sha256(body).hexdigest(),
            "api_key": "totpd",
            "application_id": signer.application_id,
        }
        hs256 = {"alg": "HS256", "typ": "JWT"}
        match n % 8:
            case 0:
                authorization = ""
            case 1:
                authorization = "Bearer not.a.token"
            case 2:
                authorization = _token({"alg": "none", "typ": "JWT"}, claims, b"")[:-43]
            case 3:
                authorization = _token(hs256, claims, b"guessed-secret")
            case 4 | 5:  # a genuine token from an hour ago (or ahead), sent with another body
                iat = int(now_s) + (3600 if n % 8 == 5 else -3600)
                captured = {**claims, "iat": iat, "payload_hash": "f" * 64}
                authorization = _token(hs256, captured, signer.secret)
            case 6:
                authorization = _token(hs256, {**claims, "payload_hash": "0" * 64}, signer.secret)
            case _:
                authorization = _token(hs256, {**claims, "application_id": "other"}, signer.secret)
        yield Request("POST", path, authorization, body)


def write(path: Path, requests: Iterator[Request]) -> int:
    """Write a request file; return how many requests it holds."""
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for request in requests:
            out.write(request.line())
            written += 1
    return written
