"""Phone numbers as totpd keeps and compares them: E.164 digits without the "+".

That is the form Vonage sends in a webhook's `from` ("447700900123"). One form everywhere: the
caller's number as it arrives, the numbers an admin writes in an allowlist, the keys of the
lockout's caller windows and `totpd unlock --caller`. E.164 numbers have at most 15 digits and a
country code never starts with 0, so "0044 ..." and a national "07700 ..." are refused: the
international prefix and the trunk 0 differ from country to country, and a wrong guess would
silently allow the wrong number.
"""

import re

from totpd.errors import PhoneNumberError

MIN_DIGITS = 7  # a 3-digit country code and a 4-digit number: the shortest E.164 numbers
MAX_DIGITS = 15  # E.164's limit
WITHHELD_WORD = "withheld"  # what an admin types for "no number" (`totpd unlock --caller`)
# Vonage's form, with a "+" tolerated (a proxy or an older Vonage sample may add one).
E164 = re.compile(rf"\+?([1-9][0-9]{{{MIN_DIGITS - 1},{MAX_DIGITS - 1}}})", re.ASCII)
# What people write between digits: spaces, dashes, dots, brackets.
SEPARATORS = re.compile(r"[ \t\-.()]")


def caller_number(value: object) -> str:
    """The caller's number from a webhook's `from`, or "" when there is none: withheld, a SIP
    URI, "Unknown", anything that is not an E.164 number."""
    if not isinstance(value, str):
        return ""
    found = E164.fullmatch(value)
    return found[1] if found else ""


def parse_number(text: str) -> str:
    """A number as a person writes it ("+44 7700 900123") -> E.164 digits ("447700900123").

    Raises PhoneNumberError, naming the rule, for anything that is not a phone number.
    """
    written = text.strip()
    if not written:
        raise PhoneNumberError("an empty entry is not a phone number")
    if written.lower() == WITHHELD_WORD:
        raise PhoneNumberError(
            "a withheld number cannot be listed: a call without a number is never on an allowlist"
        )
    if "(0)" in written.replace(" ", ""):
        raise PhoneNumberError(
            f"{written!r}: drop the (0): after the country code, the trunk 0 is not dialled"
        )
    compact = SEPARATORS.sub("", written)
    digits = compact.removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        raise PhoneNumberError(
            f"{written!r} is not a phone number: digits after an optional +, in international"
            " form (spaces, dashes, dots and brackets are ignored)"
        )
    if digits.startswith("0"):
        raise PhoneNumberError(
            f"{written!r}: write it in international form, + and the country code"
            " (e.g. +44 7700 900123), without 00 or a national 0"
        )
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise PhoneNumberError(
            f"{written!r}: an international number has {MIN_DIGITS} to {MAX_DIGITS} digits"
            " with its country code"
        )
    return digits


def stored_number(entry: str) -> str:
    """An allowlist entry as stored: E.164 digits when it is a phone number, otherwise the entry
    unchanged (it then equals no caller's number; `totpd check-config` names it)."""
    try:
        return parse_number(entry)
    except PhoneNumberError:
        return entry


def is_number(entry: str) -> bool:
    """True when `entry` is in the stored form: E.164 digits."""
    return E164.fullmatch(entry) is not None and not entry.startswith("+")


def shown(number: str) -> str:
    """A stored number as people read it: "+447700900123"."""
    return f"+{number}" if is_number(number) else number
