"""Calls in the caller's language, over real HTTP (aiohttp's test server, signed webhooks):
the words, and the NCCO's `language`, step by step."""

import re
from dataclasses import replace
from typing import Any

from tests.helpers import GMAIL_SEED, PIN, Client, Vonage, codes_near_now, spoken
from totpd.services import Services
from totpd.users import User


def languages(ncco: list[dict[str, Any]]) -> set[str]:
    """Every language the NCCO speaks or listens in."""
    found = {a["language"] for a in ncco if a["action"] == "talk"}
    return found | {a["speech"]["language"] for a in ncco if "speech" in a}


def set_alice(services: Services, **changes: Any) -> None:
    services.roster.update(lambda r: r.with_user(replace(r.users["alice"], **changes)))


async def test_a_whole_call_in_german(caller: Vonage, services: Services) -> None:
    set_alice(services, language="de-DE", accounts=("github", "gmail"))
    status, ncco = await caller.answer()
    assert status == 200
    assert languages(ncco) == {"de-DE"}
    assert spoken(ncco[:-1]) == (
        "Willkommen. Bitte geben Sie Ihre PIN ein, gefolgt von der Rautetaste."
    )
    assert spoken(ncco[-1:]) == "Entschuldigung, da ist etwas schiefgegangen. Auf Wiederhören."

    status, ncco = await caller.press("pin", PIN)
    assert languages(ncco) == {"de-DE"}
    assert spoken(ncco[:-1]) == "Für GitHub drücken Sie die 1. Für Gmail drücken Sie die 2."

    status, ncco = await caller.press("menu", "2")
    assert languages(ncco) == {"de-DE"}
    said = spoken(ncco[:-1])
    code = re.fullmatch(
        r"(?:Ihr Code für Gmail ändert sich gleich\. Der neue Code kommt in \d Sekunden?\. )?"
        r"Ihr Code für Gmail lautet: ([\d ]+)\. Noch einmal: \1\. Er ist \d+ Sekunden gültig\."
        r" Drücken Sie die 1 für einen neuen Code, die 2 für ein anderes Konto,"
        r" oder legen Sie auf\.",
        said,
    )
    assert code, said
    assert code[1].replace(" ", "") in codes_near_now(GMAIL_SEED)

    status, ncco = await caller.press("next", "9")
    assert spoken(ncco[:-1]).startswith("Diese Auswahl gibt es nicht. Drücken Sie die 1")
    status, ncco = await caller.press("next", "")
    assert (status, spoken(ncco), languages(ncco)) == (200, "Auf Wiederhören.", {"de-DE"})


async def test_several_users_hear_the_default_until_a_pin_is_accepted(
    caller: Vonage, services: Services
) -> None:
    bob_hash = services.pins.hash("73916482")
    bob = User("bob", 7, bob_hash, ("gmail",), language="fr-FR")
    services.roster.update(lambda r: r.with_user(bob))
    set_alice(services, language="de-DE")
    _, ncco = await caller.answer()
    assert languages(ncco) == {"en-GB"}
    assert "enter your user number" in spoken(ncco)
    # Neither bob's number nor a number nobody has changes a word: a user number reveals nothing.
    _, for_bob = await caller.press("user", "7")
    _, refused = await caller.press("pin", PIN)  # alice's PIN is not bob's
    _, for_nobody = await caller.press("user", "5")
    assert for_bob == for_nobody
    assert languages(for_bob) == languages(refused) == {"en-GB"}
    assert spoken(refused[:-1]) == (
        "That PIN was not accepted. Please enter your user number, then press hash."
    )
    _, refused = await caller.press("pin", "73916482")  # bob's PIN is not user 5's
    await caller.press("user", "7")
    _, ncco = await caller.press("pin", "73916482")
    assert languages(ncco) == {"fr-FR"}
    said = spoken(ncco[:-1])
    # Near the end of a time step the code is announced as about to change first.
    assert re.match(
        r"(?:Votre code Gmail va changer\. Le nouveau code arrive dans \d secondes?\. )?"
        r"Votre code Gmail est : ",
        said,
    ), said


async def test_a_sole_user_hears_their_language_from_the_greeting(
    client: Client, services: Services
) -> None:
    set_alice(services, language="de-DE")
    first, second = Vonage(client), Vonage(client)
    second.uuid = "call-0002"
    _, ncco = await first.answer()
    assert languages(ncco) == {"de-DE"}
    set_alice(services, language="it-IT")
    _, ncco = await second.answer()  # each language has a greeting of its own
    assert languages(ncco) == {"it-IT"}
    assert spoken(ncco[:-1]) == "Benvenuto. Inserisca il suo PIN, poi prema cancelletto."
    _, ncco = await first.press("pin", "000000")  # that call began in German, and stays so
    assert spoken(ncco[:-1]) == (
        "Diese PIN wurde nicht angenommen. Bitte geben Sie Ihre PIN ein, gefolgt von der"
        " Rautetaste."
    )
