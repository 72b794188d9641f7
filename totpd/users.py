"""Users: who may call in, with which keypad number, to hear which accounts (PINs: totpd.pins)."""

from dataclasses import dataclass

from totpd.errors import RosterError
from totpd.otp import NAME_PATTERN

MAX_ACCOUNTS_PER_USER = 9  # one keypad press picks an account


@dataclass(frozen=True)
class User:
    """A person who may call in: a keypad number, a PIN hash, the accounts they may hear."""

    name: str
    number: int
    pin_hash: str
    accounts: tuple[str, ...]
    callers: tuple[str, ...] = ()  # caller-ID allowlist; empty means any number

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise RosterError(
                f"user name {self.name!r} must be 1-64 of a-z, 0-9, '.', '_', '-',"
                " starting with a letter or digit"
            )
        if not 1 <= self.number <= 999_999:
            raise RosterError(f"keypad number {self.number} must be 1 to 999999")

    def __repr__(self) -> str:
        return f"User(name={self.name!r}, number={self.number}, accounts={self.accounts!r})"

    def allows(self, caller: str) -> bool:
        """True when `caller` may use this user's PIN."""
        return not self.callers or caller in self.callers
