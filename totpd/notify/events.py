"""What totpd tells the owner, and the words it uses: every notification text is here.

An `Event` is a value of facts gathered where something happened (a code read, a lockout
tripped, a duress PIN entered, a clock in doubt); `render` turns it into the `Message` sent.
Pure: no I/O, no Apprise, no clock.

Adding an event is two lines here and one where it happens:
1. a member of `EventKind` (its value is also the `event` label of the metric);
2. a `case` in `render` that words it (add the kind to `URGENT` if it must stand out);
3. `services.notifier.send(Event(EventKind.NEW_KIND, at_s=..., user=..., ...))` at the site.
"""

from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from totpd.lockout_windows import LockState


class EventKind(StrEnum):
    """What happened; its value is the metric label."""

    CODE_READ = "code_read"
    LOCKOUT = "lockout"
    DURESS = "duress"  # a user's duress PIN was entered
    CLOCK = "clock"  # the clock guard refused a webhook: no code can be read


# Kinds sent with Apprise's "failure" type and an URGENT title, so they stand out.
URGENT: frozenset[EventKind] = frozenset({EventKind.DURESS})


@dataclass(frozen=True)
class Event:
    """The facts of one event. Never a code, a PIN or a seed: there is no field for them.

    `caller` is the number as Vonage gave it ("" when withheld); `account` is the account's
    spoken label; `layer`, `limit` and `until_s` describe a lockout; `frozen` says a duress
    PIN froze the user's codes; `skew_s` is the clock guard's disagreement (local time minus
    the webhook's signed iat), `limit` then the seconds allowed, and `repeats` how many
    refusals came since the last message.
    """

    kind: EventKind
    at_s: float
    user: str = ""
    caller: str = ""
    account: str = ""
    layer: str = ""
    limit: int = 0
    until_s: float = 0.0
    caller_class: str = ""  # of a global lockout: "listed" or "unlisted" (totpd.lockout_windows)
    frozen: bool = False
    skew_s: float = 0.0
    repeats: int = 0


@dataclass(frozen=True)
class Message:
    """A notification as sent: a title, a plain-text body, and whether it is urgent."""

    title: str
    body: str
    urgent: bool = False


def lockout_tripped(state: "LockState", user: str, caller: str, at_s: float) -> Event:
    """The LOCKOUT event for a layer a wrong PIN just locked (the call's user and caller)."""
    return Event(
        EventKind.LOCKOUT,
        at_s,
        user,
        caller,
        layer=state.layer.value,
        limit=state.limit,
        until_s=state.until_s,
        caller_class=state.caller_class or "",
    )


def render(event: Event, zone: tzinfo | None = None) -> Message:
    """The words for `event`; times in `zone` (the host's local time zone by default)."""
    at = _clock(event.at_s, zone)
    user = _user(event.user)
    caller = _number(event.caller)
    match event.kind:
        case EventKind.CODE_READ:
            title = f"totpd: {event.account} code read"
            body = f"Your {event.account} code was read by phone at {at} from {caller} ({user})."
        case EventKind.LOCKOUT:
            until = _until(event.until_s, event.at_s, zone)
            title = f"totpd: lockout ({event.layer})"
            wrong = f"after {event.limit} wrong PINs, until {until}"
            if event.layer == "global" and event.caller_class == "listed":
                body = (
                    f"totpd stopped checking PINs from numbers on an allowlist {wrong}: someone"
                    f" may be calling with a listed number. The last try, at {at}, was from"
                    f" {caller} ({user}). `totpd unlock --global listed` reopens it sooner."
                )
            elif event.layer == "global":
                body = (
                    f"totpd stopped checking PINs from callers on no allowlist {wrong}; calls"
                    f" from a number on the user's allowlist still get in. The last try, at"
                    f" {at}, was from {caller} ({user}). `totpd unlock --global unlisted`"
                    " reopens it sooner."
                )
            elif event.layer == "caller":
                body = f"totpd locked out caller {caller} {wrong}. The last try was for {user}."
            else:
                body = f"totpd locked out {user} {wrong}. The last try was from {caller}."
        case EventKind.DURESS:
            title = f"totpd: duress PIN of {event.user or 'an unknown user'} entered"
            body = (
                f"The duress PIN of {user} was entered by phone at {at} from {caller}. The"
                " caller heard what a wrong PIN gets, and no code was read."
            )
            if event.frozen:
                body += (
                    f" {event.user}'s codes are frozen until an admin runs"
                    f" `totpd unlock --user {event.user}`."
                )
        case EventKind.CLOCK:
            title = "totpd: no code read, the clock is in doubt"
            body = (
                f"At {at} totpd read no code and checked no PIN: its clock and the time Vonage"
                f" signed disagree by {event.skew_s:+.0f} s, more than the {event.limit} s"
                " allowed, and callers hear that the clock cannot be trusted. Check the"
                " host's clock (timedatectl timesync-status); calls work again as soon as it"
                " is right."
            )
            if event.repeats:
                body += f" {event.repeats} more refusals since the last message."
    urgent = event.kind in URGENT
    return Message(f"URGENT {title}" if urgent else title, body, urgent)


def _clock(at_s: float, zone: tzinfo | None) -> str:
    return datetime.fromtimestamp(at_s, zone).astimezone(zone).strftime("%H:%M %Z")


def _until(until_s: float, at_s: float, zone: tzinfo | None) -> str:
    """The end of a lockout: the time, with the date when it is not the same day."""
    until = datetime.fromtimestamp(until_s, zone).astimezone(zone)
    if until.date() == datetime.fromtimestamp(at_s, zone).astimezone(zone).date():
        return until.strftime("%H:%M %Z")
    return until.strftime("%Y-%m-%d %H:%M %Z")


def _user(name: str) -> str:
    return f"user {name}" if name else "an unknown user"


def _number(caller: str) -> str:
    """E.164 with its "+" as the caller's phone shows it; anything else is not quoted.

    The caller ID is the caller's to choose (SIP trunks pass any text): only digits reach
    the owner's screen, so a crafted caller ID cannot inject markup or links.
    """
    digits = caller.strip().removeprefix("+")
    if not digits:
        return "a withheld number"
    if digits.isascii() and digits.isdigit() and len(digits) <= 15:
        return f"+{digits}"
    return "a number that is not a phone number"
