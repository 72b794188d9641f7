"""Prompt catalogues: the words a caller hears, one TOML file per language in this folder.

A file is named for the BCP-47 tag Vonage speaks it in (`de-DE.toml`). Its `[prompts]` hold
one sentence per key, in plain text, with `{placeholders}` that totpd fills in (an account's
label, a code, a count of seconds); its `[spelling]` holds a word for every letter, for codes
that carry letters ("B wie Berlin"). A file may `extend` another and replace a few prompts
(en-US says "pound" where en-GB says "hash"). Loading is strict: a missing, unknown or
misspelled prompt or placeholder is a CatalogueError naming the file and the key.
"""

import functools
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any
from xml.sax.saxutils import escape

from totpd.errors import CatalogueError

# Every prompt, with the placeholders its sentence must use (each exactly once or more, and
# no other). The renderer (ncco.py) fills them in; the flow's prompts choose which is said.
PROMPTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "welcome": frozenset(),
        "ask_user": frozenset(),
        "ask_pin": frozenset(),
        "not_heard": frozenset(),
        "pin_refused": frozenset(),
        "not_an_option": frozenset(),
        "menu_item": frozenset({"label", "key"}),
        "menu_speech": frozenset(),
        "ask_next": frozenset(),
        "ask_next_more": frozenset(),
        "code_changing": frozenset({"label", "seconds"}),
        "code_is": frozenset({"label", "code"}),
        "code_again": frozenset({"code"}),
        "code_valid": frozenset({"seconds"}),
        "seconds_one": frozenset({"count"}),
        "seconds_other": frozenset({"count"}),
        "goodbye": frozenset(),
        "goodbye_no_input": frozenset(),
        "goodbye_no_accounts": frozenset(),
        "goodbye_clock": frozenset(),
        "safety_net": frozenset(),
        "spelled": frozenset({"letter", "word"}),
    }
)
LETTERS = string.ascii_uppercase  # [spelling] has a word for each
TOP_LEVEL_KEYS = frozenset({"name", "extends", "prompts", "spelling"})


@dataclass(frozen=True)
class Catalogue:
    """One language's words, checked complete; `tag` is the language Vonage speaks them in."""

    tag: str
    name: str
    prompts: Mapping[str, str]
    spelling: Mapping[str, str]

    def say(self, prompt: str, /, **values: str) -> str:
        """SSML for `prompt`: its text XML-escaped, with `values` (SSML already) filled in."""
        return escape(self.prompts[prompt]).format(**values)

    def seconds(self, count: int) -> str:
        """SSML for a number of seconds, "1 second" or "20 seconds" in this language."""
        return self.say("seconds_one" if count == 1 else "seconds_other", count=str(count))

    def spell(self, letter: str) -> str:
        """The spelling word for a letter ("Bravo" for B), XML-escaped."""
        return escape(self.spelling[letter.upper()])


def tags() -> tuple[str, ...]:
    """The BCP-47 tags of the shipped catalogues, sorted."""
    return tuple(_shipped())


def find(tag: str) -> Catalogue:
    """The catalogue for `tag` (BCP-47 tags are case-insensitive); CatalogueError naming the
    shipped ones when there is none."""
    shipped = _shipped()
    found = shipped.get(tag) or next(
        (c for t, c in shipped.items() if t.casefold() == tag.casefold()), None
    )
    if found is None:
        raise CatalogueError(f"no prompts in language {tag!r}; totpd speaks {', '.join(shipped)}")
    return found


@functools.cache
def _shipped() -> dict[str, Catalogue]:
    """Every catalogue in this folder, loaded and checked once."""
    documents = {
        entry.name.removesuffix(".toml"): _read(entry.name, entry.read_text(encoding="utf-8"))
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".toml")
    }
    return {tag: build(tag, documents) for tag in sorted(documents)}


def _read(file_name: str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{file_name}: not valid TOML: {exc}") from None


def build(tag: str, documents: Mapping[str, Mapping[str, Any]]) -> Catalogue:
    """The catalogue `tag` from parsed files (tag -> document), its base merged in, checked."""
    document = documents[tag]
    where = f"{tag}.toml"
    unknown = set(document) - TOP_LEVEL_KEYS
    if unknown:
        raise CatalogueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    prompts = _table(where, document, "prompts")
    spelling = _table(where, document, "spelling")
    base_tag = document.get("extends")
    if base_tag is not None:
        base = documents.get(base_tag) if isinstance(base_tag, str) else None
        if base is None or "extends" in base:
            raise CatalogueError(
                f"{where}: extends {base_tag!r}, which is not a catalogue of its own"
            )
        prompts = {**_table(where, base, "prompts"), **prompts}
        spelling = {**_table(where, base, "spelling"), **spelling}
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CatalogueError(f'{where}: name: the language\'s own name, e.g. "Deutsch"')
    _check_prompts(where, prompts)
    _check_spelling(where, spelling)
    return Catalogue(tag, name, MappingProxyType(prompts), MappingProxyType(spelling))


def _table(where: str, document: Mapping[str, Any], key: str) -> dict[str, str]:
    table = document.get(key, {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise CatalogueError(f"{where}: [{key}] must be a table of strings")
    return dict(table)


def _check_prompts(where: str, prompts: Mapping[str, str]) -> None:
    missing = PROMPTS.keys() - prompts.keys()
    extra = prompts.keys() - PROMPTS.keys()
    if missing or extra:
        problems = [f"missing {', '.join(sorted(missing))}"] if missing else []
        problems += [f"unknown {', '.join(sorted(extra))}"] if extra else []
        raise CatalogueError(f"{where}: [prompts]: {'; '.join(problems)}")
    for key, text in prompts.items():
        if not text.strip():
            raise CatalogueError(f"{where}: prompts.{key}: empty")
        used = _placeholders(f"{where}: prompts.{key}", text)
        if used != PROMPTS[key]:
            expected = ", ".join(f"{{{p}}}" for p in sorted(PROMPTS[key])) or "none"
            raise CatalogueError(f"{where}: prompts.{key}: placeholders must be {expected}")


def _placeholders(where: str, text: str) -> frozenset[str]:
    """The names of the `{placeholders}` in `text`; nothing but plain names is allowed."""
    names = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        raise CatalogueError(f"{where}: unbalanced {{ or }}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise CatalogueError(f"{where}: {{{field}}} is not a plain placeholder name")
        names.add(field)
    return frozenset(names)


def _check_spelling(where: str, spelling: Mapping[str, str]) -> None:
    missing = set(LETTERS) - spelling.keys()
    extra = spelling.keys() - set(LETTERS)
    if missing or extra:
        problems = [f"missing {', '.join(sorted(missing))}"] if missing else []
        problems += [f"unknown {', '.join(sorted(extra))}"] if extra else []
        raise CatalogueError(f"{where}: [spelling]: {'; '.join(problems)}")
    for letter, word in spelling.items():
        if not word.strip():
            raise CatalogueError(f"{where}: spelling.{letter}: empty")
