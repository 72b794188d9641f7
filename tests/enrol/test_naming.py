"""Names and spoken labels for what enrolment finds, whatever a hostile QR code or export hides
in its issuer or account name: every route in ends with printable text, or with nothing."""

from pathlib import Path
from urllib.parse import quote

import pytest

from tests.enrol.test_migration import SECRET_A, account, export
from tests.enrol.test_qr import qr_png
from tests.helpers import UNPRINTABLE
from totpd.enrol import Enrolment, parse_image, parse_text
from totpd.enrol.naming import spoken_label

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def hostile_uri(hidden: str) -> str:
    """An otpauth URI whose issuer (label prefix and parameter) and account name hide `hidden`."""
    issuer = quote(f"Git{hidden}Hub", safe="")
    name = quote(f"alice{hidden}@example.com", safe="@")
    return f"otpauth://totp/{issuer}:{name}?secret={SECRET}&issuer={issuer}"


def assert_printable(enrolments: list[Enrolment]) -> None:
    """Every text of every account is printable, and the issuer's visible letters are kept."""
    for enrolment in enrolments:
        account = enrolment.account
        for text in (account.name, account.label, account.issuer):
            assert text.isprintable(), repr(text)
        assert account.label.startswith("Git")
        assert "Hub" in account.label


@pytest.mark.parametrize("hidden", UNPRINTABLE.values(), ids=UNPRINTABLE.keys())
def test_a_hostile_otpauth_uri_enrols_printable_text(hidden: str) -> None:
    assert_printable(parse_text(hostile_uri(hidden)))


@pytest.mark.parametrize("hidden", UNPRINTABLE.values(), ids=UNPRINTABLE.keys())
def test_a_hostile_migration_export_enrols_printable_text(hidden: str) -> None:
    first = account(SECRET_A, f"alice{hidden}@example.com", issuer=f"Git{hidden}Hub")
    second = account(SECRET_A[::-1], f"bob{hidden}", issuer=f"Git{hidden}Hub")
    enrolments = parse_text(export(first, second))
    assert len(enrolments) == 2
    assert_printable(enrolments)


@pytest.mark.parametrize(
    "hidden",
    [UNPRINTABLE[k] for k in ("ESC clear screen", "OSC 52 clipboard write", "bidi overrides")],
)
def test_a_hostile_qr_code_enrols_printable_text(tmp_path: Path, hidden: str) -> None:
    assert_printable(parse_image(qr_png(tmp_path / "qr.png", hostile_uri(hidden))))


def test_a_label_of_nothing_but_unprintable_characters_falls_back_to_a_name() -> None:
    assert spoken_label("\x1b\u202e\u200b") == "account"
