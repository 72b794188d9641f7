"""Aegis Authenticator vault exports, plain or encrypted (Aegis's docs/vault.md).

    {"version": 1, "header": {"slots": [...], "params": {"nonce", "tag"}}, "db": ...}

Encrypted: each password slot holds the master key, sealed with AES-256-GCM under a key that
scrypt derives from the password (`n`, `r`, `p`, `salt`); `db` is the base64 of the content
sealed under the master key (nonce and tag in `header.params`). Plain: `db` is the content
itself, and the slots and params are null. The content lists `entries`, each with a `type`
(totp, hotp, steam) and an `info` object holding the base32 secret and the parameters.
"""

import base64
import binascii
from typing import Any

from totpd.enrol.backups.crypto import open_gcm, scrypt_key
from totpd.enrol.backups.entries import Passphrase, found, load_json, member, number, text
from totpd.enrol.enrolment import Found
from totpd.errors import EnrolError

NAME = "Aegis vault"
VAULT_VERSION = 1
CONTENT_VERSIONS = (1, 2, 3)  # 2 added groups, 3 moved them to a list: entries are alike
PASSWORD_SLOT = 1
# Aegis writes one password slot (and biometric ones, useless here); a file with dozens would
# only multiply the scrypt work.
MAX_PASSWORD_SLOTS = 4
WRONG_PASSPHRASE = f"{NAME}: wrong passphrase (no password slot opens with it)"
DAMAGED = f"{NAME}: the passphrase is right but the vault's contents are damaged or were altered"


def looks_like(document: Any) -> bool:
    """Whether a parsed JSON document has an Aegis vault's shape."""
    return isinstance(document, dict) and {"version", "header", "db"} <= document.keys()


def _hex(obj: dict[str, Any], key: str, where: str) -> bytes:
    try:
        return bytes.fromhex(member(obj, key, str, where))
    except ValueError:
        raise EnrolError(f"{where}: {key} is not hexadecimal") from None


def _master_key(header: Any, passphrase: str) -> bytes:
    slots = member(header, "slots", list, f"{NAME} header")
    password_slots = [s for s in slots if isinstance(s, dict) and s.get("type") == PASSWORD_SLOT]
    if not password_slots:
        raise EnrolError(f"{NAME}: no password slot (a vault locked by biometrics only)")
    if len(password_slots) > MAX_PASSWORD_SLOTS:
        raise EnrolError(f"{NAME}: more password slots than Aegis writes: refused as damaged")
    for slot in password_slots:
        where = f"{NAME} password slot"
        key_params = member(slot, "key_params", dict, where)
        wrapping_key = scrypt_key(
            passphrase,
            _hex(slot, "salt", where),
            number(slot, "n", where, 0),
            number(slot, "r", where, 0),
            number(slot, "p", where, 0),
            NAME,
        )
        sealed = _hex(slot, "key", where) + _hex(key_params, "tag", where)
        try:
            return open_gcm(
                wrapping_key, _hex(key_params, "nonce", where), sealed, WRONG_PASSPHRASE
            )
        except EnrolError:
            continue
    raise EnrolError(WRONG_PASSPHRASE)


def _decrypted_content(document: dict[str, Any], passphrase: Passphrase) -> Any:
    header = member(document, "header", dict, NAME)
    master_key = _master_key(header, passphrase())
    params = member(header, "params", dict, f"{NAME} header")
    try:
        sealed = base64.b64decode(member(document, "db", str, NAME), validate=True)
    except (binascii.Error, ValueError):
        raise EnrolError(DAMAGED) from None
    where = f"{NAME} header params"
    plain = open_gcm(
        master_key, _hex(params, "nonce", where), sealed + _hex(params, "tag", where), DAMAGED
    )
    return load_json(plain, NAME)


def _entry(entry: Any, position: int) -> Found:
    where = f"{NAME}, entry {position}"
    info = member(entry, "info", dict, where)
    return found(
        where,
        issuer=text(entry, "issuer", where),
        account_name=text(entry, "name", where),
        secret=member(info, "secret", str, where),
        type_name=member(entry, "type", str, where),
        algorithm=text(info, "algo", where, "SHA1"),
        digits=number(info, "digits", where, 6),
        period_s=number(info, "period", where, 30),
        counter=number(info, "counter", where, 0),
    )


def read(raw: bytes, passphrase: Passphrase) -> list[Found]:
    """The accounts of an Aegis export; `passphrase` is asked only when it is encrypted."""
    document = load_json(raw, NAME)
    if not looks_like(document):
        raise EnrolError(f"{NAME}: the file is not an Aegis vault export")
    if document["version"] != VAULT_VERSION:
        raise EnrolError(f"{NAME}: unknown vault version (totpd reads version {VAULT_VERSION})")
    content = document["db"]
    if not isinstance(content, dict):
        content = _decrypted_content(document, passphrase)
    if not isinstance(content, dict) or content.get("version") not in CONTENT_VERSIONS:
        raise EnrolError(f"{NAME}: unknown content version (totpd reads versions 1 to 3)")
    entries = member(content, "entries", list, NAME)
    return [_entry(entry, position) for position, entry in enumerate(entries, start=1)]
