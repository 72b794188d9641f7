"""Prompt catalogues: every shipped language says everything English says, with the same
placeholders, and a catalogue that does not is refused with the file and the key named."""

import string
import tomllib
from importlib import resources
from typing import Any

import pytest

from totpd import catalogues
from totpd.catalogues import build, find, tags
from totpd.errors import CatalogueError

SHIPPED = {"en-GB", "en-US", "de-DE", "fr-FR", "es-ES", "it-IT", "nl-NL"}


def documents() -> dict[str, dict[str, Any]]:
    """Every catalogue file as parsed TOML, by tag, read here rather than through the loader."""
    folder = resources.files(catalogues.__name__)
    return {
        entry.name.removesuffix(".toml"): tomllib.loads(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def english_with(**changes: Any) -> dict[str, dict[str, Any]]:
    """The shipped files, with en-GB's tables changed (a key set to None is removed)."""
    shipped = documents()
    english = {**shipped["en-GB"]}
    for table, entries in changes.items():
        english[table] = {**english.get(table, {}), **entries}
        english[table] = {k: v for k, v in english[table].items() if v is not None}
    return {**shipped, "en-GB": english}


def refusal(files: dict[str, dict[str, Any]], tag: str = "en-GB") -> str:
    with pytest.raises(CatalogueError) as caught:
        build(tag, files)
    return str(caught.value)


def test_the_six_languages_are_shipped() -> None:
    assert set(tags()) >= SHIPPED
    assert {find(tag).tag for tag in SHIPPED} == SHIPPED


def test_every_catalogue_says_everything_english_says_with_its_placeholders() -> None:
    shipped = documents()
    reference = shipped["en-GB"]["prompts"]
    for tag in shipped:
        own = shipped[tag]
        prompts = {**reference, **own["prompts"]} if own.get("extends") else own["prompts"]
        assert prompts.keys() == reference.keys(), tag
        for key, text in prompts.items():
            assert placeholders(text) == placeholders(reference[key]), f"{tag}: {key}"
        assert find(tag).prompts == prompts


def test_every_catalogue_spells_every_letter() -> None:
    for tag in tags():
        spelling = find(tag).spelling
        assert sorted(spelling) == list(string.ascii_uppercase), tag
        assert all(word.strip() for word in spelling.values()), tag


def test_tags_are_found_in_any_case_and_unknown_ones_name_the_shipped() -> None:
    assert find("de-de").tag == "de-DE"
    assert find("EN-us").tag == "en-US"
    with pytest.raises(CatalogueError) as caught:
        find("de-AT")
    message = str(caught.value)
    assert message.startswith("no prompts in language 'de-AT'; totpd speaks de-DE, en-GB, en-US,")
    assert message.split("speaks ")[1].split(", ") == sorted(tags())


def test_a_catalogue_lacking_a_prompt_is_refused() -> None:
    assert refusal(english_with(prompts={"ask_pin": None})) == (
        "en-GB.toml: [prompts]: missing ask_pin"
    )


def test_a_catalogue_lacking_a_prompt_of_its_base_is_refused() -> None:
    files = english_with(prompts={"code_again": None})
    assert refusal(files, "en-US") == "en-US.toml: [prompts]: missing code_again"


def test_an_unknown_prompt_is_refused() -> None:
    assert refusal(english_with(prompts={"welcome_back": "Hello again."})) == (
        "en-GB.toml: [prompts]: unknown welcome_back"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Your code is: {code}.",  # {label} missing
        "Your {label} code is: {code} {digits}.",  # an unknown one
        "Your {labels} code is: {code}.",  # misspelt
        "Your {label.__class__} code is: {code}.",  # more than a name
        "Your {label!r} code is: {code:>9}.",
        "Your {label} code is: {code",
    ],
)
def test_a_missing_or_unknown_placeholder_is_refused(text: str) -> None:
    message = refusal(english_with(prompts={"code_is": text}))
    assert message.startswith("en-GB.toml: prompts.code_is: ")


def test_a_catalogue_lacking_a_spelling_word_is_refused() -> None:
    assert refusal(english_with(spelling={"Q": None, "Ä": "Ärger"})) == (
        "en-GB.toml: [spelling]: missing Q; unknown Ä"
    )


def test_a_catalogue_must_extend_a_catalogue_of_its_own() -> None:
    files = {**documents(), "en-US": {**documents()["en-US"], "extends": "en-AU"}}
    assert refusal(files, "en-US") == (
        "en-US.toml: extends 'en-AU', which is not a catalogue of its own"
    )


def test_unknown_top_level_keys_and_a_missing_name_are_refused() -> None:
    files = documents()
    assert refusal({**files, "en-GB": {**files["en-GB"], "voice": 2}}).endswith(
        "unknown key(s) voice"
    )
    nameless = {k: v for k, v in files["en-GB"].items() if k != "name"}
    assert "en-GB.toml: name" in refusal({**files, "en-GB": nameless})
