"""A refusal takes as long as a checked wrong PIN, so a lockout cannot be heard.

Behaviour, not a benchmark: Argon2 is made deliberately slow (about a tenth of a second here)
so that the difference between "checked" and "not checked" dwarfs the noise. Each round
times, over real HTTP, one checked wrong PIN and one refusal of each kind, back to back, so a
busy machine slows them alike; the median ratio of a refusal to its round's checked PIN must
be near 1 (a refusal that skips Argon2 scores about 0.05).
"""

import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import argon2

from tests.helpers import CALLED, WRONG_PIN
from tests.servers import Line, Opener, pin_failures
from totpd.services import Services
from totpd.state.journal import JOURNAL_FILE
from totpd.users import User

SLOW_ARGON2 = """
[pins]
argon2_time_cost = 10
argon2_memory_kib = 8192
argon2_parallelism = 1
"""
ROUNDS = 15
TOLERANCE = 0.5  # of a ratio of 1: wide for a shared, busy machine, far from 0.05
CHECKED_USERS = [f"user{index}" for index in range(1, ROUNDS + 1)]  # keypad 11.., any number
LISTERS = [f"lister{index}" for index in range(1, ROUNDS + 1)]  # keypad 41.., one number each
LISTED_NUMBER = "447700900888"
LISTER_PIN = "64738291"
LOCKED_NUMBER = "447700900666"


def add_users(services: Services) -> None:
    """Users whose windows never fill during the test: any number may call the first ones,
    only LISTED_NUMBER the listers, whose hashes have an older cost (a right PIN would be
    rehashed)."""
    pin_hash = services.pins.hash("48291673")
    older = argon2.PasswordHasher(time_cost=9, memory_cost=8192, parallelism=1)
    lister_hash = older.hash(LISTER_PIN)
    assert older.check_needs_rehash(pin_hash)

    def change(roster):  # type: ignore[no-untyped-def]
        for number, name in enumerate(CHECKED_USERS, start=11):
            roster = roster.with_user(User(name, number, pin_hash, ("github",)))
        for number, name in enumerate(LISTERS, start=41):
            lister = User(name, number, lister_hash, ("github",), (LISTED_NUMBER,))
            roster = roster.with_user(lister)
        return roster

    services.roster.update(change)


async def timed_pin(line: Line, caller: str, keypad: str, pin: str = WRONG_PIN) -> float:
    """One call up to the PIN step; the seconds its PIN took to be answered."""
    fields = {"from": caller, "to": CALLED, "uuid": str(uuid.uuid4()), "conversation_uuid": "C"}
    await line.post("/webhooks/answer", fields)
    typed = {"dtmf": {"digits": keypad, "timed_out": False}}
    heard = await line.post("/webhooks/input/user", {**fields, **typed})
    assert heard.next_step() == "pin"
    entered = {"dtmf": {"digits": pin, "timed_out": False}}
    started_s = time.perf_counter()
    answered = await line.post("/webhooks/input/pin", {**fields, **entered})
    elapsed_s = time.perf_counter() - started_s
    assert "not accepted" in answered.said
    await line.post("/webhooks/event", {**fields, "status": "completed"})
    return elapsed_s


async def storage_down(services: Services, measure: Callable[[], Awaitable[float]]) -> float:
    """`measure` while the lockout journal cannot be read or written."""
    journal = services.config.paths.state_dir / JOURNAL_FILE
    aside = journal.with_name("journal.aside")
    journal.rename(aside)
    journal.mkdir()
    try:
        return await measure()
    finally:
        journal.rmdir()
        aside.rename(journal)


def one_of_each(
    services: Services, line: Line, index: int
) -> dict[str, Callable[[], Awaitable[float]]]:
    """Round `index`: a checked wrong PIN and each kind of refusal, from numbers of its own."""
    number = f"4479{index:04d}{{}}"
    return {
        "checked": lambda: timed_pin(line, number.format("1"), str(index + 11)),
        "locked caller": lambda: timed_pin(line, LOCKED_NUMBER, "2"),
        "unknown user": lambda: timed_pin(line, number.format("2"), "99"),
        # The right PIN, from a number the user did not list: it is not even checked.
        "not listed": lambda: timed_pin(line, number.format("3"), str(index + 41), LISTER_PIN),
        "storage down": lambda: storage_down(
            services, lambda: timed_pin(line, number.format("4"), "3")
        ),
    }


async def test_every_refusal_takes_as_long_as_a_checked_wrong_pin(open_app: Opener) -> None:
    services, line = await open_app(
        pins=SLOW_ARGON2,
        per_caller="1 per hour",
        per_user="3 per hour",
        **{"global": "1000 per day"},
        global_listed="1000 per day",
    )
    add_users(services)
    await timed_pin(line, LOCKED_NUMBER, "1")  # alice; its window (1 per hour) is now full
    for index in range(3):  # the window all unknown keypad numbers share is now full
        await timed_pin(line, f"4479000001{index:02d}", "99")
    times: dict[str, list[float]] = {}
    for index in range(ROUNDS):
        kinds = one_of_each(services, line, index)
        order = list(kinds)
        order = order[index % len(order) :] + order[: index % len(order)]  # none always first
        for kind in order:
            times.setdefault(kind, []).append(await kinds[kind]())
    assert pin_failures(services, layer="pin") == 1 + ROUNDS  # the checked ones, no other
    checked = times.pop("checked")
    assert statistics.median(checked) > 0.03, checked  # Argon2 really is the slow part
    ratios = {
        kind: round(statistics.median(t / c for t, c in zip(found, checked, strict=True)), 2)
        for kind, found in times.items()
    }
    assert all(abs(ratio - 1) < TOLERANCE for ratio in ratios.values()), ratios


async def test_a_refusal_also_spends_what_counting_costs_on_slow_storage(
    open_app: Opener,
) -> None:
    # An SD card's fsyncs can make counting and recording a wrong PIN cost as much as Argon2.
    # The daemon keeps a running mean of that cost (Lockout.counting_cost_s, which only wrong
    # PINs update); set here to what such a card costs, a refusal must spend it on top of the
    # two Argon2 verifications, as a wrong PIN does, not overlap the two.
    services, line = await open_app(pins=SLOW_ARGON2, per_caller="1 per hour")
    add_users(services)  # several users: the call asks for a keypad number first
    await timed_pin(line, LOCKED_NUMBER, "1")  # this caller's window is now full
    argon2_s = statistics.median([await timed_pin(line, LOCKED_NUMBER, "1") for _ in range(3)])
    assert argon2_s > 0.05, argon2_s  # a refusal runs Argon2: this is what it costs
    slow_storage_s = 0.3
    services.lockout.counting_cost_s = slow_storage_s
    refused_s = statistics.median([await timed_pin(line, LOCKED_NUMBER, "1") for _ in range(3)])
    assert refused_s > argon2_s + 0.8 * slow_storage_s, (refused_s, argon2_s)


DURESS_PIN = "73829164"
DURESS_ROUNDS = 12
# Slower still: two verifications of about 0.1 s each, beside which what a duress PIN does
# while the second one runs (a freeze written, a notification queued) must vanish.
SLOWER_ARGON2 = SLOW_ARGON2.replace("argon2_time_cost = 10", "argon2_time_cost = 20").replace(
    "argon2_memory_kib = 8192", "argon2_memory_kib = 12288"
)
DURESS_TOLERANCE = 0.25  # one Argon2 verification fewer or more scores 0.5 or 1.5
# Per round, by keypad hundreds: a user without a duress PIN, one with one, one whose duress PIN
# freezes her readout, and one frozen before the rounds begin.
DURESS_USERS = {100: ("", False), 200: ("duress", False), 300: ("duress", True)}
FROZEN = 400


def add_duress_users(services: Services) -> None:
    """The users of DURESS_USERS and FROZEN, DURESS_ROUNDS of each; PIN 48291673."""
    pin_hash = services.pins.hash("48291673")
    duress_hash = services.pins.hash(DURESS_PIN)
    kinds = {**DURESS_USERS, FROZEN: ("duress", True)}

    def change(roster):  # type: ignore[no-untyped-def]
        for index in range(DURESS_ROUNDS):
            for hundreds, (duress, freezes) in kinds.items():
                number = hundreds + index
                stored = duress_hash if duress else ""
                user = User(f"d{number}", number, pin_hash, ("github",), (), "", stored, freezes)
                roster = roster.with_user(user)
        return roster

    services.roster.update(change)


def duress_round(line: Line, index: int) -> dict[str, Callable[[], Awaitable[float]]]:
    """Round `index`: a wrong PIN and the entries it must not be told apart from."""
    number = f"4479{index:04d}{{}}"
    return {
        "wrong": lambda: timed_pin(line, number.format("5"), str(200 + index)),
        "wrong, no duress PIN set": lambda: timed_pin(line, number.format("6"), str(100 + index)),
        "duress": lambda: timed_pin(line, number.format("7"), str(200 + index), DURESS_PIN),
        "duress that freezes": lambda: timed_pin(
            line, number.format("8"), str(300 + index), DURESS_PIN
        ),
        "right PIN, frozen": lambda: timed_pin(
            line, number.format("9"), str(FROZEN + index), "48291673"
        ),
    }


async def test_a_duress_pin_takes_as_long_as_a_wrong_pin(open_app: Opener) -> None:
    """Also: a wrong PIN takes as long whether or not the user has a duress PIN, and a frozen
    user's right PIN as long as a wrong one, so neither can be heard either."""
    services, line = await open_app(
        pins=SLOWER_ARGON2, per_user="100 per hour", **{"global": "1000 per day"}
    )
    add_duress_users(services)
    for index in range(DURESS_ROUNDS):
        await timed_pin(line, f"4479100{index:04d}", str(FROZEN + index), DURESS_PIN)
    times: dict[str, list[float]] = {}
    for index in range(DURESS_ROUNDS):
        kinds = duress_round(line, index)
        order = list(kinds)
        order = order[index % len(order) :] + order[: index % len(order)]
        for kind in order:
            times.setdefault(kind, []).append(await kinds[kind]())
    assert services.metrics.registry.get_sample_value("totpd_duress_total") == 3 * DURESS_ROUNDS
    wrong = times.pop("wrong")
    assert statistics.median(wrong) > 0.1, wrong  # two slow Argon2 verifications
    ratios = {
        kind: round(statistics.median(t / w for t, w in zip(found, wrong, strict=True)), 2)
        for kind, found in times.items()
    }
    medians = {
        kind: round(statistics.median(t) * 1000) for kind, t in [("wrong", wrong), *times.items()]
    }
    print(f"\n[duress timing] median ratio to a wrong PIN: {ratios}; medians (ms): {medians}")
    assert all(abs(ratio - 1) < DURESS_TOLERANCE for ratio in ratios.values()), ratios
