"""Backup files of authenticator apps -> accounts, decrypted in memory only.

Formats: Aegis vault exports, 2FAS `.2fas` backups, andOTP backups (each plain or encrypted),
ente Auth encrypted exports, and `uri`: a text file of otpauth:// (or steam://) URIs one per
line, or Google Authenticator export URIs, which is also ente Auth's plain export. `auto`
recognises the format from the content. A passphrase is asked for (by calling `passphrase`)
only when the file is encrypted. The file is read whole into memory, under a size cap; the
decrypted accounts never touch the disk.
"""

import importlib
from collections.abc import Callable
from typing import Any

from totpd.enrol.backups.entries import Passphrase, load_json
from totpd.enrol.enrolment import Enrolment, Found
from totpd.enrol.naming import name_accounts
from totpd.errors import EnrolError

__all__ = ["FORMATS", "MAX_FILE_BYTES", "Passphrase", "parse_backup"]

# Aegis exports carry each account's icon (tens of KiB of base64 apiece): a few hundred
# accounts with icons stay well under this; anything larger is not a backup of OTP accounts.
MAX_FILE_BYTES = 16 << 20
# Format name -> its module, imported only when a backup is read (the ciphers weigh on every
# start of the `totpd` command otherwise). Auto-detection tries them in this order.
MODULES = {"aegis": "aegis", "2fas": "twofas", "ente": "ente", "andotp": "andotp"}
FORMATS = ("auto", *MODULES, "uri")
Reader = Callable[[bytes, Passphrase], list[Found]]


def _module(format_name: str) -> Any:
    return importlib.import_module(f"{__name__}.{MODULES[format_name]}")


def _reader(format_name: str) -> Reader:
    reader: Reader = _module(format_name).read
    return reader


def _read_uris(raw: bytes, _passphrase: Passphrase) -> list[Found]:
    from totpd.enrol import found_in_uris

    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EnrolError("URI list: the file is not text") from None
    if "://" not in text:
        raise EnrolError("URI list: the file holds no otpauth:// URI")
    try:
        return found_in_uris(text)
    except EnrolError as exc:
        raise EnrolError(f"URI list, {exc}") from None


def _json_reader(document: Any) -> Reader:
    for format_name in MODULES:
        if _module(format_name).looks_like(document):
            return _reader(format_name)
    raise EnrolError("a JSON file of no format totpd knows (Aegis, 2FAS, andOTP, ente Auth)")


def _detect(raw: bytes) -> Reader:
    """The reader for `raw`, recognised from its content."""
    if not raw.strip():
        raise EnrolError("the file is empty")
    try:
        text = raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        # Of the formats known, only andOTP's encrypted backup is binary.
        return _reader("andotp")
    if text[:1] in ("{", "["):
        return _json_reader(load_json(raw, "backup"))
    if "://" in text:
        return _read_uris
    if text and all(c.isprintable() or c.isspace() for c in text):
        raise EnrolError("a text file without any otpauth:// URI: not a backup totpd knows")
    return _reader("andotp")  # binary that happens to decode as UTF-8


def parse_backup(raw: bytes, format_name: str, passphrase: Passphrase) -> list[Enrolment]:
    """The accounts of a backup file's bytes, named as one import; EnrolError says what is wrong.

    `format_name` is one of FORMATS; `passphrase` is called only for an encrypted file.
    """
    if len(raw) > MAX_FILE_BYTES:
        raise EnrolError(
            f"the file is too large for a backup of OTP accounts (the limit is"
            f" {MAX_FILE_BYTES >> 20} MiB)"
        )
    if format_name == "auto":
        reader = _detect(raw)
    elif format_name == "uri":
        reader = _read_uris
    elif format_name in MODULES:
        reader = _reader(format_name)
    else:
        raise EnrolError(f"unknown backup format; use one of {', '.join(FORMATS)}")
    found = reader(raw, passphrase)
    if not found:
        raise EnrolError("the backup holds no accounts")
    return name_accounts(found)
