"""Names for accounts that arrive without one: a safe directory name and a spoken label.

The name follows totpd.otp.NAME_PATTERN and comes from the issuer ("GitHub" -> "github");
the spoken label is the issuer as written. When several accounts of one import share an
issuer, the account part tells them apart ("google-alice", "Google alice").
"""

import re
import unicodedata
from collections import Counter

from totpd.enrol.enrolment import Enrolment, Found
from totpd.otp import MAX_LABEL_CHARS, Account
from totpd.printable import strip_unprintable

MAX_NAME_CHARS = 64
FALLBACK_NAME = "account"


def safe_name(text: str) -> str:
    """`text` folded to a directory name: ASCII, lower case, a-z 0-9 . _ - only."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9._-]+", "-", ascii_text.lower()).strip("-._")
    return slug[:MAX_NAME_CHARS].rstrip("-._") or FALLBACK_NAME


def spoken_label(text: str) -> str:
    """`text` as a spoken label: printable characters only (a QR code may hide controls or
    bidi overrides in an issuer), single spaces, no longer than a label may be."""
    words = " ".join(strip_unprintable(text).split())
    return words[:MAX_LABEL_CHARS].rstrip() or FALLBACK_NAME


def account_part(account_name: str) -> str:
    """The short, readable part of an account name: an e-mail's local part, else all of it."""
    local, at, _domain = account_name.partition("@")
    return local if at and local else account_name


def _base(found: Found, with_account_part: bool) -> str:
    if not found.issuer:
        return found.account_name
    if with_account_part and found.account_name:
        return f"{found.issuer} {account_part(found.account_name)}"
    return found.issuer


def _suffixed(text: str, number: int, limit: int, separator: str) -> str:
    suffix = f"{separator}{number}"
    return text[: limit - len(suffix)] + suffix


def name_accounts(found: list[Found]) -> list[Enrolment]:
    """Turn found entries into enrolments with names and labels unique within the list."""
    by_issuer = Counter(safe_name(f.issuer) for f in found if f.issuer)
    taken: set[str] = set()
    enrolments = []
    for entry in found:
        base = _base(entry, with_account_part=by_issuer[safe_name(entry.issuer)] > 1)
        name, label = safe_name(base), spoken_label(base)
        first_name, first_label, number = name, label, 2
        while name in taken:
            name = _suffixed(first_name, number, MAX_NAME_CHARS, "-")
            label = _suffixed(first_label, number, MAX_LABEL_CHARS, " ")
            number += 1
        taken.add(name)
        account = Account(
            name=name,
            label=label,
            kind=entry.kind,
            algorithm=entry.algorithm,
            digits=entry.digits,
            period_s=entry.period_s,
            counter=entry.counter,
            issuer=entry.issuer,
            encoder=entry.encoder,
        )
        enrolments.append(Enrolment(account, entry.secret))
    return enrolments
