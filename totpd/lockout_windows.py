"""The lockout's vocabulary: its layers, the classes of caller, one window and its storage
identifiers, and what a check or a status reports (totpd.lockout is the policy over them)."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from totpd import phone
from totpd.users import User

WITHHELD = "(withheld)"
UNKNOWN_USER = "(unknown)"
EVERYONE = "all"  # the unlisted global window's storage key, as before there were classes


class Layer(StrEnum):
    """One lockout layer; also its metric label."""

    GLOBAL = "global"
    CALLER = "caller"
    USER = "user"
    FROZEN = "frozen"  # a user whose duress PIN froze the codes (per user, no class)


class CallerClass(StrEnum):
    """Who is trying, as far as the allowlists tell; also a metric label."""

    LISTED = "listed"  # from a number on the allowlist of the user they try
    UNLISTED = "unlisted"  # anyone else


def classify(user: User | None, caller: str) -> CallerClass:
    """The class of an attempt on `user` (None: no such keypad number) from `caller`."""
    if user is not None and user.callers and user.allows(caller):
        return CallerClass.LISTED
    return CallerClass.UNLISTED


@dataclass(frozen=True)
class Window:
    """One window of one layer: the caller layer's is per number, whatever the class."""

    layer: Layer
    key: str  # the number or WITHHELD; the user name or UNKNOWN_USER; the class, for global
    caller_class: CallerClass | None  # None for the caller and frozen layers
    scope: str = ""  # "" for the phone; another kind of guess keeps its own (the admin page)

    def identifiers(self) -> tuple[str, ...]:
        """The `limits` identifiers of this window (its storage key without the limit)."""
        scoped = f"{self.scope}:" if self.scope else ""
        listed = self.caller_class is CallerClass.LISTED
        if self.layer is Layer.GLOBAL:
            return (self.layer, scoped + (CallerClass.LISTED if listed else EVERYONE))
        if self.layer is Layer.USER and listed:
            return (self.layer, scoped + self.key, CallerClass.LISTED)
        return (self.layer, scoped + self.key)

    def describe(self) -> str:
        """What the admin reads: `user alice (listed callers)`, `admin page: caller ...`."""
        where = "admin page: " if self.scope else ""
        if self.layer is Layer.FROZEN:
            name = f"the freeze of user {self.key}"
        elif self.layer is Layer.GLOBAL:
            name = f"global ({self.caller_class} callers)" if not self.scope else "global"
        elif self.layer is Layer.USER and not self.scope:
            name = f"user {self.key} ({self.caller_class} callers)"
        else:
            name = f"{self.layer} {self.key}"
        return where + name


@dataclass(frozen=True)
class CountedAttempt:
    """One attempt counted in one window, between two instants (to give it back by)."""

    window: Window
    since_s: float
    until_s: float


@dataclass(frozen=True)
class Admission:
    """The outcome of `admit`: the layer that refused the attempt, or where it was counted."""

    refused_by: Layer | None
    counted: tuple[CountedAttempt, ...] = ()


@dataclass(frozen=True)
class LockState:
    """Attempts on record in one window.

    `until_s` is when the window has room again: the end of the lockout when `locked`,
    otherwise when the oldest attempt stops counting. A freeze has no end but an unlock:
    `since_s` says when it began. `storage_key` names the window exactly
    (`Lockout.unlock_window`).
    """

    layer: Layer
    key: str
    failures: int
    limit: int
    until_s: float
    caller_class: CallerClass | None = None
    scope: str = ""
    storage_key: str = ""
    since_s: float = 0.0

    @property
    def locked(self) -> bool:
        """True while this window may not take another PIN."""
        return self.failures >= self.limit

    @property
    def window(self) -> Window:
        """The window these failures are in."""
        return Window(self.layer, self.key, self.caller_class, self.scope)

    def describe(self) -> str:
        """One line for the admin, e.g. `caller 447700900001: 3/3 failures, locked until ...`."""
        if self.layer is Layer.FROZEN:
            return f"user {self.key}: frozen by the duress PIN since {_local(self.since_s)}"
        until = _local(self.until_s)
        state = f"locked until {until}" if self.locked else f"open (oldest expires {until})"
        return f"{self.window.describe()}: {self.failures}/{self.limit} failures, {state}"


def _local(at_s: float) -> str:
    return datetime.fromtimestamp(at_s).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def caller_key(caller: str) -> str:
    """The caller layer's key: the number in E.164 digits; every call without one shares one."""
    return phone.caller_number(caller) or WITHHELD


def named_caller_key(text: str) -> str:
    """The caller window an admin names: "withheld", or a number as people write it.

    Raises PhoneNumberError for anything else: never a guess at which window was meant.
    """
    if text.strip().lower() == phone.WITHHELD_WORD:
        return WITHHELD
    return phone.parse_number(text)


def user_key(user: str) -> str:
    """The user layer's key: the user name; every unknown user number shares one."""
    return user or UNKNOWN_USER
