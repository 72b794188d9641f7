"""Which characters totpd keeps, speaks and prints: every class of unprintable character found,
removed or escaped, and printable text (any script) left alone."""

import pytest

from tests.helpers import UNPRINTABLE
from totpd.printable import for_terminal, strip_unprintable, unprintable_in

PRINTABLE = ["GitHub", "Zürich Bank", "Ελληνικά", "日本語", "🔐 Vault", "a\\x1b b", "O'Neil & Co"]


@pytest.mark.parametrize("hidden", UNPRINTABLE.values(), ids=UNPRINTABLE.keys())
def test_every_class_of_unprintable_character_is_found(hidden: str) -> None:
    found = unprintable_in(f"Git{hidden}Hub")
    assert found is not None
    assert found in hidden


@pytest.mark.parametrize("text", PRINTABLE)
def test_printable_text_in_any_script_is_kept_as_it_is(text: str) -> None:
    assert unprintable_in(text) is None
    assert strip_unprintable(text) == text
    assert for_terminal(text) == text


@pytest.mark.parametrize("hidden", UNPRINTABLE.values(), ids=UNPRINTABLE.keys())
def test_stripping_leaves_only_what_a_reader_sees(hidden: str) -> None:
    cleaned = strip_unprintable(f"Git{hidden}Hub")
    assert unprintable_in(cleaned) is None
    visible = "".join(c for c in hidden if c.isprintable())
    spaces = " " * sum(1 for c in hidden if c.isspace())
    assert cleaned.replace(" ", "") == f"Git{visible}Hub".replace(" ", "")
    assert cleaned.count(" ") == spaces.count(" ") + visible.count(" ")


@pytest.mark.parametrize("hidden", UNPRINTABLE.values(), ids=UNPRINTABLE.keys())
def test_a_terminal_gets_each_unprintable_character_as_a_visible_escape(hidden: str) -> None:
    shown = for_terminal(f"Git{hidden}Hub")
    assert shown.isprintable()
    for char in hidden:
        if not char.isprintable():
            assert (
                f"\\x{ord(char):02x}" in shown
                or f"\\u{ord(char):04x}" in shown
                or (f"\\U{ord(char):08x}" in shown)
            )


def test_escapes_read_as_python_would_write_them() -> None:
    assert for_terminal("a\x1b[2Jb\u202ec\U000e0041") == "a\\x1b[2Jb\\u202ec\\U000e0041"
