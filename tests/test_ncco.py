"""Rendering in every language: valid SSML, codes read the same way, the NCCO's language the
catalogue's, and codes with letters spelled with each language's own alphabet."""

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from totpd.catalogues import find, tags
from totpd.config import CallConfig
from totpd.emulator import plain_text
from totpd.flow import (
    AskAccount,
    AskNext,
    AskPin,
    AskUser,
    Choice,
    Ending,
    Goodbye,
    NotAccepted,
    NotAnOption,
    Step,
    Welcome,
)
from totpd.ncco import SayCode, Speakable, render, spoken_code
from totpd.otp import Reading

SPEECH = CallConfig(speech_menu=True)
TRICKY = Choice("att", 'AT&T <Mobile> "work"')  # a label with every character XML escapes
EVERY_PROMPT: list[Speakable] = [
    Welcome(),
    AskUser(),
    AskUser(again=True),
    AskPin(),
    AskPin(again=True),
    NotAccepted(),
    NotAnOption(),
    AskAccount((Choice("github", "GitHub"), TRICKY), again=True),
    AskNext(more_accounts=True),
    AskNext(more_accounts=False, again=True),
    SayCode("GitHub", Reading("123456", 20)),
    SayCode(TRICKY.label, Reading("B7KQ9", 1, wait_s=1)),
    *(Goodbye(ending) for ending in Ending),
]
SSML_TAGS = {"speak", "prosody", "say-as", "break"}


def ssml(action: dict[str, Any]) -> ET.Element:
    """A talk action's text as XML; raises ParseError when it is not well-formed."""
    return ET.fromstring(action["text"])  # noqa: S314 - our own output, not untrusted input


def talks(ncco: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in ncco if a["action"] == "talk"]


@pytest.mark.parametrize("tag", tags())
def test_every_prompt_is_valid_ssml_in_every_language(tag: str) -> None:
    words = find(tag)
    for prompt in EVERY_PROMPT:
        for step in (Step.ENDED, Step.MENU):
            said = ""
            for action in talks(render([prompt], step, "https://x.test", SPEECH, words)):
                root = ssml(action)
                assert root.tag == "speak"
                assert {e.tag for e in root.iter()} <= SSML_TAGS, (tag, prompt)
                said += "".join(root.itertext())
            assert "{" not in said, (tag, prompt)  # every placeholder was filled in
            if (
                TRICKY in getattr(prompt, "choices", ())
                or getattr(prompt, "label", "") == TRICKY.label
            ):
                assert TRICKY.label in said  # escaped on the way in, intact when heard


@pytest.mark.parametrize("tag", tags())
def test_digits_groups_repeats_and_pauses_are_the_same_in_every_language(tag: str) -> None:
    config = CallConfig(digit_group=3, code_repeats=2)
    code = SayCode("GitHub", Reading("48151623", 20, wait_s=12))
    (action,) = render([code], Step.ENDED, "https://x.test", config, find(tag))
    root = ssml(action)
    readings = root.findall("prosody")
    assert len(readings) == 2  # read twice
    for reading in readings:
        assert reading.get("rate") == "slow"
        assert [e.text for e in reading.iter("say-as")] == ["481", "516", "23"]
        assert {e.get("interpret-as") for e in reading.iter("say-as")} == {"digits"}
        assert [e.get("time") for e in reading.iter("break")] == ["700ms", "700ms"]
    pauses = [e.get("time") for e in root.findall("break")]
    assert pauses == ["10s", "2s", "1s"]  # the 12 s wait (in steps Vonage honours), then "again"
    said = "".join(root.itertext())
    assert " 12 " in said  # the seconds to wait, said as a number in the sentence
    assert " 20 " in said


@pytest.mark.parametrize(
    ("tag", "heard"),
    [
        ("en-GB", "B as in Bravo 7 K as in Kilo Q as in Quebec 9"),
        ("de-DE", "B wie Berlin 7 K wie Köln Q wie Quickborn 9"),
        ("fr-FR", "B comme Berthe 7 K comme Kléber Q comme Quintal 9"),
        ("es-ES", "B de Barcelona 7 K de Kilo Q de Querido 9"),
        ("it-IT", "B come Bologna 7 K come Kursaal Q come Quarto 9"),
        ("nl-NL", "B van Bernard 7 K van Karel Q van Quotiënt 9"),
    ],
)
def test_a_code_with_letters_is_spelled_in_the_callers_language(tag: str, heard: str) -> None:
    said = spoken_code("B7KQ9", 3, find(tag))
    assert plain_text(said) == heard
    root = ET.fromstring(f"<speak>{said}</speak>")  # noqa: S314 - our own output
    letters = [e.text for e in root.iter("say-as") if e.get("interpret-as") == "characters"]
    assert letters == ["B", "K", "Q"]
    assert len(root.findall("prosody/break")) == 4  # a pause between every two characters


def test_the_ncco_speaks_and_listens_in_the_catalogues_language() -> None:
    config = CallConfig(language="en-GB", voice_style=3, premium=True, speech_menu=True)
    menu = AskAccount((Choice("github", "GitHub"), Choice("gmail", "Gmail")))
    german = render([NotAccepted(), menu], Step.MENU, "https://x.test", config, find("de-DE"))
    assert {(a["language"], a["style"]) for a in talks(german)} == {("de-DE", 0)}
    assert not any("premium" in a for a in talks(german))  # style 3 and premium are en-GB's
    (listening,) = [a for a in german if a["action"] == "input"]
    assert listening["speech"]["language"] == "de-DE"
    assert plain_text(german[0]["text"]) == "Diese PIN wurde nicht angenommen."
    english = render([menu], Step.MENU, "https://x.test", config, find("en-GB"))
    assert {(a["language"], a["style"], a["premium"]) for a in talks(english)} == {
        ("en-GB", 3, True)
    }
