"""The words of each notification: what the owner reads on their phone."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from totpd.lockout_windows import CallerClass, Layer, LockState
from totpd.notify import events
from totpd.notify.events import Event, EventKind, lockout_tripped, render

LONDON = ZoneInfo("Europe/London")
# 14:03 in London on 2 June 2025 (British Summer Time).
AT_S = datetime(2025, 6, 2, 14, 3, 27, tzinfo=LONDON).timestamp()


def code_read(caller: str = "447700900123", user: str = "alice") -> Event:
    return Event(EventKind.CODE_READ, AT_S, user, caller, "GitHub")


def test_a_code_read_names_the_account_the_time_the_number_and_the_user() -> None:
    message = render(code_read(), LONDON)
    assert message.body == (
        "Your GitHub code was read by phone at 14:03 BST from +447700900123 (user alice)."
    )
    assert message.title == "totpd: GitHub code read"
    assert not message.urgent


def test_times_are_in_the_zone_asked_for() -> None:
    assert "at 13:03 UTC" in render(code_read(), ZoneInfo("UTC")).body
    assert "at 15:03 CEST" in render(code_read(), ZoneInfo("Europe/Berlin")).body


@pytest.mark.parametrize(
    ("caller", "shown"),
    [
        ("", "from a withheld number"),
        ("+447700900123", "from +447700900123"),
        ("447700900123", "from +447700900123"),
    ],
)
def test_the_caller_is_shown_as_a_dialable_number(caller: str, shown: str) -> None:
    assert shown in render(code_read(caller), LONDON).body


@pytest.mark.parametrize(
    "caller",
    [
        "<a href='https://evil.example'>tap here</a>",
        "sip:attacker@evil.example",
        "[click](https://evil.example)",
        "4477009001234567890",  # longer than any E.164 number
        "٤٤٧٧٠٠٩٠٠١٢٣",  # Arabic-Indic digits pass str.isdigit()
    ],
)
def test_a_crafted_caller_id_never_reaches_the_owners_screen(caller: str) -> None:
    body = render(code_read(caller), LONDON).body
    assert "from a number that is not a phone number" in body
    assert "evil" not in body
    assert caller not in body


def test_an_unknown_user_is_said_so() -> None:
    assert "(an unknown user)" in render(code_read(user=""), LONDON).body


def lockout(layer: Layer, until: datetime, caller_class: CallerClass | None = None) -> Event:
    state = LockState(layer, "ignored", 3, 3, until.timestamp(), caller_class)
    return lockout_tripped(state, "alice", "447700900123", AT_S)


def test_a_caller_lockout_says_who_how_many_and_until_when() -> None:
    message = render(lockout(Layer.CALLER, datetime(2025, 6, 2, 14, 18, tzinfo=LONDON)), LONDON)
    assert message.title == "totpd: lockout (caller)"
    assert message.body == (
        "totpd locked out caller +447700900123 after 3 wrong PINs, until 14:18 BST."
        " The last try was for user alice."
    )


def test_a_user_lockout_names_the_user_and_the_last_number() -> None:
    body = render(lockout(Layer.USER, datetime(2025, 6, 2, 15, 3, tzinfo=LONDON)), LONDON).body
    assert body == (
        "totpd locked out user alice after 3 wrong PINs, until 15:03 BST."
        " The last try was from +447700900123."
    )


def test_the_unlisted_breaker_says_who_is_refused_who_is_not_and_how_to_reopen() -> None:
    until = datetime(2025, 6, 3, 9, 30, tzinfo=LONDON)  # the next day: the date is given
    body = render(lockout(Layer.GLOBAL, until, CallerClass.UNLISTED), LONDON).body
    assert (
        "stopped checking PINs from callers on no allowlist after 3 wrong PINs,"
        " until 2025-06-03 09:30 BST; calls from a number on the user's allowlist still get in"
    ) in body
    assert "at 14:03 BST, was from +447700900123 (user alice)" in body
    assert "`totpd unlock --global unlisted`" in body


def test_the_listed_breaker_says_a_listed_number_may_be_spoofed() -> None:
    until = datetime(2025, 6, 3, 9, 30, tzinfo=LONDON)
    body = render(lockout(Layer.GLOBAL, until, CallerClass.LISTED), LONDON).body
    assert "stopped checking PINs from numbers on an allowlist after 3 wrong PINs" in body
    assert "someone may be calling with a listed number" in body
    assert "`totpd unlock --global listed`" in body


def test_an_urgent_kind_stands_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "URGENT", frozenset({EventKind.CODE_READ}))
    message = render(code_read(), LONDON)
    assert message.urgent
    assert message.title.startswith("URGENT ")


def test_every_kind_has_words() -> None:
    # A kind added without a `case` in render() fails here rather than in production.
    for kind in EventKind:
        message = render(Event(kind, AT_S, "alice", "447700900123", "GitHub", "user", 3, AT_S))
        assert message.title
        assert message.body


def test_a_duress_pin_is_urgent_and_says_the_caller_heard_a_wrong_pin() -> None:
    message = render(Event(EventKind.DURESS, AT_S, "alice", "447700900123"), LONDON)
    assert message.urgent
    assert message.title == "URGENT totpd: duress PIN of alice entered"
    assert message.body == (
        "The duress PIN of user alice was entered by phone at 14:03 BST from +447700900123."
        " The caller heard what a wrong PIN gets, and no code was read."
    )


def test_a_duress_pin_that_froze_the_codes_says_how_to_unfreeze_them() -> None:
    event = Event(EventKind.DURESS, AT_S, "alice", "", frozen=True)
    body = render(event, LONDON).body
    assert "from a withheld number." in body
    assert body.endswith(
        " alice's codes are frozen until an admin runs `totpd unlock --user alice`."
    )


def test_the_clock_guard_says_how_far_off_the_clock_is_and_what_to_check() -> None:
    event = Event(EventKind.CLOCK, AT_S, limit=5, skew_s=3600.4, repeats=0)
    message = render(event, LONDON)
    assert not message.urgent
    assert message.title == "totpd: no code read, the clock is in doubt"
    assert message.body.startswith(
        "At 14:03 BST totpd read no code and checked no PIN: its clock and the time Vonage"
        " signed disagree by +3600 s, more than the 5 s allowed"
    )
    assert "timedatectl timesync-status" in message.body
    assert "more refusals" not in message.body
    held = render(Event(EventKind.CLOCK, AT_S, limit=5, skew_s=-30, repeats=7), LONDON).body
    assert "disagree by -30 s" in held
    assert held.endswith(" 7 more refusals since the last message.")
