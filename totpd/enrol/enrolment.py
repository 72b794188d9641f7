"""What enrolment produces: an account ready to enrol, and the raw facts it was built from."""

from dataclasses import dataclass, field, replace

from totpd.otp import Account, Encoder, Kind, normalize_base32


@dataclass(frozen=True)
class Found:
    """One OTP entry as a source (URI, export) describes it, before totpd names it."""

    issuer: str
    account_name: str
    secret: str = field(repr=False)
    kind: Kind = Kind.TOTP
    algorithm: str = "SHA1"
    digits: int = 6
    period_s: int = 30
    counter: int = 0
    encoder: Encoder = Encoder.DIGITS


@dataclass(frozen=True)
class Enrolment:
    """An account and its base32 secret; the secret stays out of repr() and str()."""

    account: Account
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        # One canonical form, checked once: every route in ends here.
        object.__setattr__(self, "secret", normalize_base32(self.secret))

    def renamed(self, name: str, label: str | None = None) -> "Enrolment":
        """The same account under another name (and spoken label, when given)."""
        account = replace(self.account, name=name, label=label or self.account.label)
        return replace(self, account=account)
