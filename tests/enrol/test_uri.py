"""otpauth:// URIs and bare base32 secrets in, accounts and secrets out.

Codes are checked against pyotp's own reading of the same URI, so a parameter totpd misreads
shows up as a wrong code, not just a wrong field.
"""

import base64
import time
from urllib.parse import quote

import pyotp
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from totpd.enrol import Enrolment, parse_text
from totpd.enrol.uri import format_uri
from totpd.errors import EnrolError
from totpd.otp import Kind, hotp_at, totp_at

SECRET = "HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ"


def only(text: str) -> Enrolment:
    """The one enrolment in `text`."""
    found = parse_text(text)
    assert len(found) == 1
    return found[0]


def test_a_full_totp_uri() -> None:
    uri = (
        "otpauth://totp/ACME%20Co:john.doe%40example.com?secret="
        + SECRET
        + "&issuer=ACME+Co&algorithm=SHA256&digits=8&period=60"
    )
    found = only(uri)
    account = found.account
    assert (account.name, account.label, account.issuer) == ("acme-co", "ACME Co", "ACME Co")
    assert (account.kind, account.algorithm, account.digits, account.period_s) == (
        Kind.TOTP,
        "SHA256",
        8,
        60,
    )
    reference = pyotp.parse_uri(uri)
    assert isinstance(reference, pyotp.TOTP)
    now = time.time()
    assert totp_at(account, found.secret, now) == reference.at(now)


def test_defaults_and_a_label_without_issuer() -> None:
    account = only(f"otpauth://totp/alice@example.com?secret={SECRET}").account
    assert (account.name, account.label, account.issuer) == (
        "alice-example.com",
        "alice@example.com",
        "",
    )
    assert (account.algorithm, account.digits, account.period_s) == ("SHA1", 6, 30)


def test_issuer_from_the_label_prefix_and_lower_case_parameters() -> None:
    account = only(
        f"otpauth://TOTP/GitHub:%20alice?SECRET={SECRET.lower()}&Algorithm=sha512"
    ).account
    assert (account.label, account.issuer, account.algorithm) == ("GitHub", "GitHub", "SHA512")


def test_the_issuer_parameter_wins_over_the_label_prefix() -> None:
    assert only(f"otpauth://totp/Old:alice?secret={SECRET}&issuer=New").account.issuer == "New"


def test_hotp_with_its_counter() -> None:
    uri = f"otpauth://hotp/Bank:me?secret={SECRET}&issuer=Bank&counter=42&digits=7"
    found = only(uri)
    assert (found.account.kind, found.account.counter, found.account.digits) == (Kind.HOTP, 42, 7)
    reference = pyotp.parse_uri(uri)
    assert isinstance(reference, pyotp.HOTP)
    assert hotp_at(found.account, found.secret, 42) == reference.generate_otp(42)


def test_unknown_parameters_are_ignored() -> None:
    uri = f"otpauth://totp/X:y?secret={SECRET}&issuer=X&image=https%3A%2F%2Fexample.com%2Fa.png"
    assert only(uri).account.issuer == "X"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"otpauth://totp/X?secret={SECRET}&algorithm=MD5", "unsupported algorithm 'MD5'"),
        (f"otpauth://totp/X?secret={SECRET}&digits=4", "digits must be 5 to 10, not 4"),
        (f"otpauth://totp/X?secret={SECRET}&digits=11", "digits must be 5 to 10, not 11"),
        (f"otpauth://totp/X?secret={SECRET}&digits=six", "digits must be a whole number"),
        (f"otpauth://totp/X?secret={SECRET}&period=0", "period must be at least 1 second"),
        (f"otpauth://totp/X?secret={SECRET}&period=-30", "period must be a whole number"),
        ("otpauth://totp/X?issuer=X", "the secret parameter is missing"),
        ("otpauth://totp/X?secret=&issuer=X", "the secret parameter is missing"),
        (f"otpauth://motp/X?secret={SECRET}", "the type must be totp, hotp or steam"),
        (f"otpauth://totp/X?secret={SECRET}&secret={SECRET}", "'secret' is given twice"),
        (f"otpauth://hotp/X?secret={SECRET}&counter=x", "counter must be a whole number"),
        ("otpauth://totp/X?secret=NOT-BASE32-!!", "not valid base32"),
        ("otpauth://totp/X?secret=JBSWY3DP", "too short"),
        ("https://example.com/?secret=" + SECRET, "expected an otpauth"),
    ],
)
def test_bad_uris_are_refused_clearly(uri: str, message: str) -> None:
    with pytest.raises(EnrolError, match=message) as caught:
        parse_text(uri)
    assert SECRET not in str(caught.value)
    assert "NOT-BASE32" not in str(caught.value)


def test_bare_base32_in_any_case_with_spaces_and_no_padding() -> None:
    found = only("  hxdm vjec jjws rb3h wizr 4ifu gftm xboz \n")
    assert found.secret == SECRET
    assert found.account.name == "account"  # the caller names it (account add NAME)
    short = only("jbsw-y3dp-ehpk-3pxp-jbsw")  # 25 characters: padding is added
    assert short.secret == "JBSWY3DPEHPK3PXPJBSW===="


def test_invalid_base32_does_not_echo_the_input() -> None:
    with pytest.raises(EnrolError, match="not valid base32") as caught:
        parse_text("hunter2-is-my-secret-1")
    assert "hunter2" not in str(caught.value)


def test_several_uris_one_per_line_with_the_bad_line_named() -> None:
    text = f"otpauth://totp/GitHub:a?secret={SECRET}\n\notpauth://totp/GitLab:b?secret={SECRET}\n"
    assert [e.account.name for e in parse_text(text)] == ["github", "gitlab"]
    with pytest.raises(EnrolError, match=r"line 2: .*digits"):
        parse_text(
            f"otpauth://totp/A:a?secret={SECRET}\notpauth://totp/B:b?secret={SECRET}&digits=4"
        )


def test_the_secret_stays_out_of_repr_and_str() -> None:
    found = only(f"otpauth://totp/GitHub:alice?secret={SECRET}")
    assert SECRET not in repr(found)
    assert SECRET not in str(found)
    assert SECRET not in repr([found])


def test_renamed_keeps_the_secret_and_parameters() -> None:
    found = only(f"otpauth://totp/GitHub:alice?secret={SECRET}&digits=8").renamed("gh", "Git Hub")
    assert (found.account.name, found.account.label, found.account.digits) == ("gh", "Git Hub", 8)
    assert found.secret == SECRET


def test_unicode_issuers_get_ascii_names_and_keep_their_spoken_label() -> None:
    uri = f"otpauth://totp/{quote('Société Générale')}:moi?secret={SECRET}"
    account = only(uri).account
    assert (account.name, account.label) == ("societe-generale", "Société Générale")


def test_too_large_input_is_refused() -> None:
    with pytest.raises(EnrolError, match="too large"):
        parse_text("A" * (2 << 20))


# pyotp, the reference here, wants at least 112-bit secrets and periods up to 120 s.
secrets_st = st.binary(min_size=14, max_size=64).map(lambda b: base64.b32encode(b).decode())
names_st = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30
)


@settings(max_examples=150, deadline=None)
@given(
    secret=secrets_st,
    issuer=names_st.filter(lambda s: ":" not in s and s.strip() != ""),
    account_name=names_st.filter(lambda s: ":" not in s),
    algorithm=st.sampled_from(["SHA1", "SHA256", "SHA512"]),
    digits=st.integers(6, 8),
    period=st.integers(1, 120),
    now=st.integers(0, 2**33),
)
# An unassigned character after a space: dropped, it must not leave the space behind.
@example(
    secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    issuer="0 \ud7fc",
    account_name="a",
    algorithm="SHA1",
    digits=6,
    period=30,
    now=0,
)
def test_any_uri_pyotp_writes_gives_the_codes_pyotp_gives(
    secret: str, issuer: str, account_name: str, algorithm: str, digits: int, period: int, now: int
) -> None:
    import hashlib

    reference = pyotp.TOTP(
        secret, digits=digits, digest=getattr(hashlib, algorithm.lower()), interval=period
    )
    uri = reference.provisioning_uri(name=account_name, issuer_name=issuer)
    found = only(uri)
    # What a reader sees of the issuer: unprintable characters (unassigned ones too) dropped.
    seen = "".join(c for c in issuer if c.isprintable() or c.isspace())
    assert found.account.issuer == " ".join(seen.split())
    assert totp_at(found.account, found.secret, now) == reference.at(now)
    again = only(format_uri(found))  # and totpd's own URIs read back the same
    assert (again.account, again.secret) == (found.account, found.secret)
