"""andOTP backups: plain JSON, or encrypted with a password (andOTP 0.6.3 and later).

Encrypted layout, all binary: a 4-byte big-endian PBKDF2-HMAC-SHA1 round count, a 12-byte
salt, a 12-byte AES-256-GCM nonce, then the JSON sealed with the tag appended. The plain JSON
is a list of entries: `secret` (base32), `issuer`, `label`, `digits`, `type` (TOTP, HOTP,
STEAM), `algorithm`, `period` and `counter`. Old andOTP files without `issuer` put it in the
label as "Issuer - account".
"""

import struct
from typing import Any

from totpd.enrol.backups.crypto import (
    GCM_NONCE_BYTES,
    GCM_TAG_BYTES,
    open_gcm,
    pbkdf2_key,
)
from totpd.enrol.backups.entries import Passphrase, found, load_json, member, number, text
from totpd.enrol.enrolment import Found
from totpd.errors import EnrolError

NAME = "andOTP backup"
SALT_BYTES = 12
HEADER_BYTES = 4 + SALT_BYTES + GCM_NONCE_BYTES


def looks_like(document: Any) -> bool:
    """Whether a parsed JSON document looks like a plain andOTP backup."""
    return (
        isinstance(document, list)
        and bool(document)
        and all(isinstance(e, dict) and {"secret", "type", "label"} <= e.keys() for e in document)
    )


def _decrypted(raw: bytes, passphrase: Passphrase) -> bytes:
    if len(raw) < HEADER_BYTES + GCM_TAG_BYTES:
        raise EnrolError(f"{NAME}: the file is truncated")
    (rounds,) = struct.unpack(">I", raw[:4])
    salt, nonce = raw[4 : 4 + SALT_BYTES], raw[4 + SALT_BYTES : HEADER_BYTES]
    key = pbkdf2_key(passphrase(), salt, rounds, "sha1", NAME)
    refusal = f"{NAME}: the passphrase is wrong, or the file is truncated, damaged or altered"
    return open_gcm(key, nonce, raw[HEADER_BYTES:], refusal)


def _entry(entry: Any, position: int) -> Found:
    where = f"{NAME}, entry {position}"
    label = member(entry, "label", str, where)
    issuer = text(entry, "issuer", where)
    if "issuer" not in entry:
        prefix, dash, rest = label.partition(" - ")
        issuer, label = (prefix, rest) if dash else ("", label)
    return found(
        where,
        issuer=issuer,
        account_name=label,
        secret=member(entry, "secret", str, where),
        type_name=member(entry, "type", str, where),
        algorithm=text(entry, "algorithm", where, "SHA1"),
        digits=number(entry, "digits", where, 6),
        period_s=number(entry, "period", where, 30),
        counter=number(entry, "counter", where, 0),
    )


def is_plain(raw: bytes) -> bool:
    """Whether `raw` is a plain (JSON) backup rather than an encrypted one."""
    return raw.lstrip()[:1] == b"["


def read(raw: bytes, passphrase: Passphrase) -> list[Found]:
    """The accounts of an andOTP backup; `passphrase` is asked only when it is encrypted."""
    document = load_json(raw if is_plain(raw) else _decrypted(raw, passphrase), NAME)
    if not isinstance(document, list):
        raise EnrolError(f"{NAME}: the accounts list is malformed")
    return [_entry(entry, position) for position, entry in enumerate(document, start=1)]
