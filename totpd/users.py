"""Users: who may call in, with which keypad number, to hear which accounts (PINs: totpd.pins)."""

from dataclasses import dataclass

from totpd import catalogues, phone
from totpd.errors import CatalogueError, RosterError
from totpd.otp import NAME_PATTERN

MAX_ACCOUNTS_PER_USER = 9  # one keypad press picks an account


@dataclass(frozen=True)
class User:
    """A person who may call in: a keypad number, a PIN hash, the accounts they may hear, and
    the language they hear them in once their PIN is accepted ("": the config's call.language).

    A user may also have a duress PIN (its Argon2id hash; "" when none): on the phone it is a
    wrong PIN, and it tells the owner; with `duress_freezes` it also freezes the user's codes
    until `totpd unlock --user` (docs/duress.md).
    """

    name: str
    number: int
    pin_hash: str
    accounts: tuple[str, ...]
    # The caller-ID allowlist, E.164 digits (totpd.phone); empty means any number.
    callers: tuple[str, ...] = ()
    language: str = ""  # BCP-47 tag of a shipped prompt catalogue
    duress_hash: str = ""
    duress_freezes: bool = False

    def __post_init__(self) -> None:
        # Every path in (the CLI, a directory file an older totpd wrote with "+44 ...") ends in
        # the one stored form. An entry that is no number stays as it is and matches no call.
        object.__setattr__(self, "callers", tuple(phone.stored_number(c) for c in self.callers))
        if not NAME_PATTERN.fullmatch(self.name):
            raise RosterError(
                f"user name {self.name!r} must be 1-64 of a-z, 0-9, '.', '_', '-',"
                " starting with a letter or digit"
            )
        if not 1 <= self.number <= 999_999:
            raise RosterError(f"keypad number {self.number} must be 1 to 999999")
        if self.language:
            try:
                catalogue = catalogues.find(self.language)
            except CatalogueError as exc:
                raise RosterError(f"user {self.name}: {exc}") from None
            object.__setattr__(self, "language", catalogue.tag)  # as shipped: "de-DE"

    def __repr__(self) -> str:
        return f"User(name={self.name!r}, number={self.number}, accounts={self.accounts!r})"

    def allows(self, caller: str) -> bool:
        """True when `caller` (E.164 digits, "" when withheld) may use this user's PIN."""
        return not self.callers or (phone.is_number(caller) and caller in self.callers)

    def unusable_callers(self) -> tuple[str, ...]:
        """Allowlist entries that are not phone numbers (written before totpd checked them)."""
        return tuple(c for c in self.callers if not phone.is_number(c))
