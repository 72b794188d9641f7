"""ente Auth encrypted exports (the plain export is a text file of otpauth URIs).

    {"version": 1, "kdfParams": {"memLimit", "opsLimit", "salt"},
     "encryptedData": BASE64, "encryptionNonce": BASE64}

The key is libsodium's crypto_pwhash (Argon2id v1.3) of the password with the salt, memory
(`memLimit`, bytes) and passes (`opsLimit`) of the file. `encryptedData` is one message of an
XChaCha20-Poly1305 secretstream whose header is `encryptionNonce`, tagged final; inside are
otpauth:// URIs, one per line.
"""

import base64
import binascii
from typing import Any

from totpd.enrol.backups.crypto import argon2id_key
from totpd.enrol.backups.entries import Passphrase, load_json, member, number
from totpd.enrol.enrolment import Found
from totpd.errors import EnrolError

NAME = "ente Auth export"
SODIUM_NOT_INSTALLED = (
    "reading ente Auth's encrypted exports is not installed (PyNaCl, the `ente` extra): import"
    " ente's plain export, a file of otpauth:// links, instead"
)
VERSION = 1
SALT_BYTES = 16
DAMAGED = f"{NAME}: the passphrase is wrong, or the file is truncated, damaged or altered"


def looks_like(document: Any) -> bool:
    """Whether a parsed JSON document has an ente Auth export's shape."""
    keys = {"kdfParams", "encryptedData", "encryptionNonce"}
    return isinstance(document, dict) and keys <= document.keys()


def _base64(obj: dict[str, Any], key: str, where: str) -> bytes:
    try:
        return base64.b64decode(member(obj, key, str, where), validate=True)
    except (binascii.Error, ValueError):
        raise EnrolError(f"{where}: {key} is truncated or not base64") from None


def _open_stream(key: bytes, header: bytes, sealed: bytes) -> bytes:
    from nacl import bindings as sodium
    from nacl.exceptions import CryptoError

    if len(header) != sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES:
        raise EnrolError(f"{NAME}: encryptionNonce is malformed")
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
        plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, sealed, None)
    except (CryptoError, ValueError, TypeError):
        raise EnrolError(DAMAGED) from None
    # Without the final tag the stream was cut short: a truncation Poly1305 alone misses.
    if tag != sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL:
        raise EnrolError(DAMAGED)
    return bytes(plain)


def read(raw: bytes, passphrase: Passphrase) -> list[Found]:
    """The accounts of an ente Auth encrypted export."""
    from totpd.enrol import found_in_uris

    document = load_json(raw, NAME)
    if not looks_like(document):
        raise EnrolError(f"{NAME}: the file is not an ente Auth encrypted export")
    if document.get("version") != VERSION:
        raise EnrolError(f"{NAME}: unknown version (totpd reads version {VERSION})")
    try:
        import nacl  # noqa: F401 - the `ente` extra: libsodium
    except ModuleNotFoundError:
        raise EnrolError(SODIUM_NOT_INSTALLED) from None
    params = member(document, "kdfParams", dict, NAME)
    where = f"{NAME} kdfParams"
    salt = _base64(params, "salt", where)
    if len(salt) != SALT_BYTES:
        raise EnrolError(f"{where}: the salt is malformed")
    key = argon2id_key(
        passphrase(),
        salt,
        passes=number(params, "opsLimit", where, 0),
        memory_bytes=number(params, "memLimit", where, 0),
        what=NAME,
    )
    header = _base64(document, "encryptionNonce", NAME)
    plain = _open_stream(key, header, _base64(document, "encryptedData", NAME))
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        raise EnrolError(f"{NAME}: the decrypted accounts are not text") from None
    try:
        return found_in_uris(text)
    except EnrolError as exc:
        raise EnrolError(f"{NAME}, {exc}") from None
