"""The PIN step's upgrade of a PIN hash to the configured Argon2 cost never overwrites a PIN an
admin changed while the old one was being verified."""

from dataclasses import replace

import argon2

from tests.helpers import PIN
from totpd.pin_check import _store_rehash
from totpd.roster import Roster
from totpd.services import Services


def set_pin_hash(services: Services, pin_hash: str) -> None:
    def change(roster: Roster) -> Roster:
        return roster.with_user(replace(roster.users["alice"], pin_hash=pin_hash))

    services.roster.update(change)


async def test_a_rehash_replaces_the_hash_it_verified(services: Services) -> None:
    verified = services.roster.current().users["alice"].pin_hash
    upgraded = services.pins.hash(PIN)
    await _store_rehash(services, "alice", verified, upgraded)
    assert services.roster.current().users["alice"].pin_hash == upgraded


async def test_a_pin_changed_during_the_check_is_kept(services: Services) -> None:
    verified = services.roster.current().users["alice"].pin_hash
    changed_by_the_admin = services.pins.hash("58203914")
    set_pin_hash(services, changed_by_the_admin)  # `totpd user passwd alice`, meanwhile
    await _store_rehash(services, "alice", verified, services.pins.hash(PIN))
    kept = services.roster.current().users["alice"].pin_hash
    assert kept == changed_by_the_admin
    assert argon2.PasswordHasher().verify(kept, "58203914")
