"""Two kinds of caller, two budgets: an attack from numbers on no allowlist cannot lock out a
user calling from a number on their allowlist, and each kind's real-hash checks stay bounded.

Over real HTTP (aiohttp's test server, the embedded journal), with the default limits unless a
test says otherwise. alice may call only from CALLER; bob (keypad 2) from any number.
"""

import asyncio

from tests.helpers import CALLER, PIN, WRONG_PIN
from tests.servers import Heard, Line, Opener, pin_failures, place_call
from totpd.lockout_windows import CallerClass
from totpd.services import Services, clear_lockouts, read_lockouts
from totpd.users import User

BOB_PIN = "73916482"
ALICE_NUMBERS = tuple(f"4477009{index:05d}" for index in range(1, 31))  # CALLER is the first


def with_bob_and_alices_allowlist(services: Services, alice_numbers: tuple[str, ...]) -> None:
    """alice (keypad 1) may call from `alice_numbers` only; bob (keypad 2) from anywhere."""
    bob_hash = services.pins.hash(BOB_PIN)

    def change(roster):  # type: ignore[no-untyped-def]
        alice = roster.users["alice"]
        alice = User(alice.name, 1, alice.pin_hash, alice.accounts, alice_numbers)
        return roster.with_user(alice).with_user(User("bob", 2, bob_hash, ("github",)))

    services.roster.update(change)


def unlisted_number(index: int) -> str:
    """An attacker's number: on no allowlist; every fifth call withheld."""
    return "" if index % 5 == 0 else f"4479{index:08d}"


def heard_code(heard: list[Heard]) -> bool:
    """True when the call read a code."""
    return any("code is" in h.said for h in heard)


async def attack(line: Line, calls: int, numbers: object = unlisted_number) -> list[list[Heard]]:
    """`calls` calls of 3 wrong PINs each, at alice, bob and a keypad number nobody has."""
    assert callable(numbers)
    keypad = ("1", "2", "9")
    return [
        await place_call(line, numbers(i), [WRONG_PIN] * 3, user=keypad[i % 3])
        for i in range(calls)
    ]


async def test_twenty_calls_a_day_from_unlisted_numbers_leave_a_listed_caller_in(
    open_app: Opener,
) -> None:
    services, line = await open_app()
    with_bob_and_alices_allowlist(services, (CALLER,))
    calls = await attack(line, 20)
    assert not any(heard_code(call) for call in calls)
    first_try = await place_call(line, CALLER, [PIN], user="1")
    assert heard_code(first_try)
    assert pin_failures(services, layer="pin") <= 10  # the attack was bounded all the same


async def test_guesses_from_numbers_on_no_allowlist_never_reach_an_allowlisted_users_hash(
    open_app: Opener,
) -> None:
    services, line = await open_app(per_caller="1000 per hour", per_user="1000 per hour")
    with_bob_and_alices_allowlist(services, (CALLER,))
    for index in range(1, 31):
        await place_call(line, unlisted_number(index), [WRONG_PIN] * 3, user="1")
    assert pin_failures(services, layer="pin") == 0  # not one of the 90 met alice's hash
    assert pin_failures(services, layer="allowlist") == 10  # the unlisted budget, spent
    right_pin = await place_call(line, "447999999999", [PIN], user="1")
    assert not heard_code(right_pin)  # her PIN, from a number she did not list


async def test_the_guesses_that_reach_a_real_hash_are_bounded_for_each_kind_of_caller(
    open_app: Opener,
) -> None:
    services, line = await open_app(per_caller="1000 per hour", per_user="1000 per hour")
    with_bob_and_alices_allowlist(services, ALICE_NUMBERS)
    await asyncio.gather(
        *(place_call(line, unlisted_number(i), [WRONG_PIN] * 3, user="2") for i in range(40))
    )
    # Caller ID is spoofed: the attacker knows every number on alice's list.
    await asyncio.gather(
        *(place_call(line, n, [WRONG_PIN] * 3, user="1") for n in ALICE_NUMBERS * 2)
    )
    assert pin_failures(services, layer="pin", **{"class": "unlisted"}) == 10  # global
    assert pin_failures(services, layer="pin", **{"class": "listed"}) == 10  # global_listed
    assert pin_failures(services, layer="pin") == 20
    locked = {
        (s.layer.value, s.key)
        for s in await asyncio.to_thread(read_lockouts, services.config)
        if s.locked
    }
    assert {("global", "unlisted"), ("global", "listed")} <= locked


async def test_an_unknown_number_waits_out_the_attack_unless_the_admin_reopens_its_window(
    open_app: Opener,
) -> None:
    services, line = await open_app()
    with_bob_and_alices_allowlist(services, (CALLER,))
    await attack(line, 20)
    hotel_desk = "33140000000"  # bob, from a number nobody could have listed
    assert not heard_code(await place_call(line, hotel_desk, [BOB_PIN], user="2"))
    cleared = await asyncio.to_thread(
        clear_lockouts, services.config, None, None, CallerClass.UNLISTED
    )
    assert [(s.layer.value, s.key) for s in cleared] == [("global", "unlisted")]
    assert heard_code(await place_call(line, hotel_desk, [BOB_PIN], user="2"))
    assert heard_code(await place_call(line, CALLER, [PIN], user="1"))
