"""What the commands read from a person: secrets, never from argv, and comma lists."""

import getpass
import sys

from totpd.errors import TotpdError


def read_secret(prompt: str, confirm: bool = False) -> str:
    """One line from stdin when it is not a terminal; otherwise a no-echo prompt."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline().strip()
        if not line:
            raise TotpdError(f"nothing on standard input ({prompt.rstrip(': ')})")
        return line
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != first:
        raise TotpdError("the two entries differ")
    return first


def comma_list(text: str) -> tuple[str, ...]:
    """The non-empty, stripped items of "a, b,c"."""
    return tuple(part.strip() for part in text.split(",") if part.strip())
