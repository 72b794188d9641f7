"""The NCCO's SSML stays well-formed XML, and says only printable text, whatever an enrolled
account's issuer held: one hostile label must not break a user's whole spoken menu."""

import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest

from tests.helpers import PIN, UNPRINTABLE, Vonage
from totpd.enrol import parse_text
from totpd.enrol.commit import store_enrolments
from totpd.roster import Roster
from totpd.services import Services

SECRET = "KVKFKRCPNZQUYMLXOVYDSQKJKZDTSRLD"


@pytest.mark.parametrize("hidden", UNPRINTABLE.values(), ids=UNPRINTABLE.keys())
async def test_a_hostile_issuer_leaves_the_spoken_menu_valid(
    caller: Vonage, services: Services, hidden: str
) -> None:
    issuer = quote(f"Bank{hidden}Co", safe="")
    (found,) = parse_text(f"otpauth://totp/{issuer}:alice?secret={SECRET}&issuer={issuer}")
    store_enrolments([found], services.secrets, services.roster)

    def hears_it(roster: Roster) -> Roster:
        alice = roster.users["alice"]
        return roster.with_user(
            type(alice)(alice.name, alice.number, alice.pin_hash, ("github", found.account.name))
        )

    services.roster.update(hears_it)
    _, greeting = await caller.answer()
    status, menu = await caller.press("pin", PIN)
    assert status == 200
    for ncco in (greeting, menu):
        for action in ncco:
            if action["action"] == "talk":
                ET.fromstring(action["text"])  # noqa: S314 - raises on invalid XML
                assert action["text"].isprintable(), repr(action["text"])
    assert "For GitHub, press 1." in menu[0]["text"]
    assert ", press 2." in menu[0]["text"]
