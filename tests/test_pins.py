"""The PIN policy (NIST SP 800-63B: 8 digits chosen, 6 assigned at random), assigned PINs, and
PINs set before the policy changed."""

from collections import Counter
from dataclasses import replace

import argon2
import pytest

from tests.helpers import Vonage, spoken
from totpd.config import PinConfig
from totpd.errors import RosterError
from totpd.pins import PinHasher
from totpd.services import Services

FAST = PinConfig(argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1)


@pytest.mark.parametrize("pin", ["4829167", "11111111", "12345678", "98765432", "4829167a"])
def test_a_chosen_pin_that_breaks_the_policy_is_refused_without_naming_it(pin: str) -> None:
    with pytest.raises(RosterError) as refused:
        PinHasher(FAST).hash(pin)
    assert pin not in str(refused.value)


def test_assigned_pins_have_their_own_length_and_are_not_easy() -> None:
    hasher = PinHasher(replace(FAST, generated_length=6))
    drawn = [hasher.generate() for _ in range(40)]
    pins = [pin for pin, _ in drawn]
    assert all(len(pin) == 6 and pin.isdigit() for pin in pins)
    assert len(set(pins)) == 40
    assert all(hasher.verify_sync(pin_hash, pin).ok for pin, pin_hash in drawn[:3])
    # Every position takes many digits: no fixed pattern (40 draws, 10 digits each).
    assert all(len(Counter(pin[i] for pin in pins)) >= 6 for i in range(6))


async def test_a_six_digit_pin_set_before_the_policy_keeps_working(
    caller: Vonage, services: Services
) -> None:
    old = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("482916")
    services.roster.update(lambda r: r.with_user(replace(r.users["alice"], pin_hash=old)))
    await caller.answer()
    _, ncco = await caller.press("pin", "482916")
    assert "Your GitHub code is" in spoken(ncco)
