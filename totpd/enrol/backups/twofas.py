"""2FAS Authenticator backups (`.2fas`), schema versions 1 to 4, plain or encrypted.

    {"schemaVersion": 4, "services": [...], "servicesEncrypted": "CT:SALT:IV", "reference": ...}

Encrypted: `servicesEncrypted` is three base64 parts: the services list as JSON sealed with
AES-256-GCM (tag appended), the PBKDF2-HMAC-SHA256 salt, and the GCM nonce. The key takes
10,000 rounds, fixed by the app, not read from the file. `reference` (same key and salt, its
own nonce) seals a fixed text, so a wrong passphrase is told apart from a damaged file.
Each service has a base32 `secret`, a `name` (the service) and an `otp` object: `account`,
`issuer`, `digits`, `period`, `counter`, `algorithm` and `tokenType` (TOTP, HOTP, STEAM).
"""

import base64
import binascii
from typing import Any

from totpd.enrol.backups.crypto import open_gcm, pbkdf2_key
from totpd.enrol.backups.entries import Passphrase, found, load_json, member, number, text
from totpd.enrol.enrolment import Found
from totpd.errors import EnrolError

NAME = "2FAS backup"
SCHEMA_VERSIONS = (1, 2, 3, 4)
ROUNDS = 10_000
WRONG_PASSPHRASE = f"{NAME}: wrong passphrase"
DAMAGED = f"{NAME}: the passphrase is wrong, or the file is damaged or was altered"
ALTERED = f"{NAME}: the passphrase is right but the accounts are damaged or were altered"


def looks_like(document: Any) -> bool:
    """Whether a parsed JSON document has a 2FAS backup's shape."""
    return isinstance(document, dict) and {"schemaVersion", "services"} <= document.keys()


def _parts(sealed: str, what: str) -> tuple[bytes, bytes, bytes]:
    parts = sealed.split(":")
    if len(parts) != 3:
        raise EnrolError(f"{NAME}: {what} is malformed (expected three parts)")
    try:
        ciphertext, salt, nonce = (base64.b64decode(p, validate=True) for p in parts)
    except (binascii.Error, ValueError):
        raise EnrolError(f"{NAME}: {what} is truncated or not base64") from None
    return ciphertext, salt, nonce


def _decrypted_services(document: dict[str, Any], passphrase: Passphrase) -> Any:
    ciphertext, salt, nonce = _parts(document["servicesEncrypted"], "servicesEncrypted")
    key = pbkdf2_key(passphrase(), salt, ROUNDS, "sha256", NAME)
    refusal = DAMAGED
    reference = document.get("reference")
    if isinstance(reference, str):
        sealed_reference, _salt, reference_nonce = _parts(reference, "reference")
        open_gcm(key, reference_nonce, sealed_reference, WRONG_PASSPHRASE)
        refusal = ALTERED
    return load_json(open_gcm(key, nonce, ciphertext, refusal), NAME)


def _entry(service: Any, position: int) -> Found:
    where = f"{NAME}, entry {position}"
    otp = member(service, "otp", dict, where)
    return found(
        where,
        # Schema 4 keeps the service's name apart from the URI's issuer; either may be empty.
        issuer=text(service, "name", where) or text(otp, "issuer", where),
        account_name=text(otp, "account", where) or text(otp, "label", where),
        secret=member(service, "secret", str, where),
        type_name=text(otp, "tokenType", where, "TOTP"),
        algorithm=text(otp, "algorithm", where, "SHA1"),
        digits=number(otp, "digits", where, 6),
        period_s=number(otp, "period", where, 30),
        counter=number(otp, "counter", where, 0),
    )


def read(raw: bytes, passphrase: Passphrase) -> list[Found]:
    """The accounts of a 2FAS backup; `passphrase` is asked only when it is encrypted."""
    document = load_json(raw, NAME)
    if not looks_like(document):
        raise EnrolError(f"{NAME}: the file is not a 2FAS backup")
    version = document["schemaVersion"]
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS:
        raise EnrolError(f"{NAME}: unknown schema version (totpd reads versions 1 to 4)")
    if isinstance(document.get("servicesEncrypted"), str):
        services = _decrypted_services(document, passphrase)
    else:
        services = document["services"]
    if not isinstance(services, list):
        raise EnrolError(f"{NAME}: the services list is malformed")
    return [_entry(service, position) for position, service in enumerate(services, start=1)]
