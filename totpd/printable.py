"""Which characters totpd keeps, speaks and prints, for text that comes from outside: QR codes,
exports, the roster file, a daemon's answers.

A character is printable when Python says so (`str.isprintable`): letters, marks, digits,
punctuation and symbols of any script, and the ASCII space. Everything else is not: C0 and C1
controls (NUL, BEL, ESC, DEL, CSI, OSC, ...), format characters (the bidi embeddings, overrides
and isolates U+202A-202E and U+2066-2069, zero-width characters, the byte order mark, the soft
hyphen, tag characters), line and paragraph separators, other spaces, surrogates, private-use
and unassigned code points. Such a character is invisible or reorders text on a screen, is not
allowed in the XML of a spoken menu (NUL, ESC, ...), or drives a terminal (ESC, CSI, an OSC 52
clipboard write).
"""


def unprintable_in(text: str) -> str | None:
    """The first unprintable character of `text`, or None when it has none."""
    return next((char for char in text if not char.isprintable()), None)


def code_point(char: str) -> str:
    """A character's name for a message that must not carry the character: "U+001B"."""
    return f"U+{ord(char):04X}"


def strip_unprintable(text: str) -> str:
    """`text` as a reader sees it: whitespace of any kind becomes a space, other unprintable
    characters go."""
    return "".join(
        " " if char.isspace() else char for char in text if char.isprintable() or char.isspace()
    )


def for_terminal(text: str) -> str:
    """`text` safe to print: each unprintable character as a visible escape ("\\x1b", "\\u202e")
    that a terminal shows instead of obeying."""
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    point = ord(char)
    if point <= 0xFF:
        return f"\\x{point:02x}"
    if point <= 0xFFFF:
        return f"\\u{point:04x}"
    return f"\\U{point:08x}"
