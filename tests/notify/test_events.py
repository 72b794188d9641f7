"""The words of each notification: what the owner reads on their phone."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from totpd.lockout import Layer, LockState
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


def lockout(layer: Layer, until: datetime) -> Event:
    state = LockState(layer, "ignored", 3, 3, until.timestamp())
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


def test_the_global_breaker_says_everyone_is_refused_and_how_to_reopen() -> None:
    until = datetime(2025, 6, 3, 9, 30, tzinfo=LONDON)  # the next day: the date is given
    body = render(lockout(Layer.GLOBAL, until), LONDON).body
    assert "stopped checking PINs from anyone after 3 wrong PINs, until 2025-06-03 09:30 BST" in (
        body
    )
    assert "at 14:03 BST, was from +447700900123 (user alice)" in body
    assert "`totpd unlock`" in body


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
