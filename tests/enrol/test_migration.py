"""Google Authenticator's `otpauth-migration://` export: real exports, crafted ones, garbage."""

import base64
from urllib.parse import quote

import pyotp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from totpd.enrol import parse_text
from totpd.enrol.migration import parse_migration
from totpd.errors import EnrolError
from totpd.otp import Kind, hotp_at, totp_at

# Public example exports whose contents are published alongside them.
# Example:alice@google.com, secret JBSWY3DPEHPK3PXP, TOTP (type given, no batch fields).
EXAMPLE_ALICE = (
    "otpauth-migration://offline?data="
    "CjEKCkhlbGxvId6tvu8SGEV4YW1wbGU6YWxpY2VAZ29vZ2xlLmNvbRoHRXhhbXBsZTAC"
)
# pi@raspberrypi, issuer raspberrypi, secret 7KSQL2JTUDIS5EF65KLMRQIIGY; a negative batch id
# (a 10-byte varint), percent-encoded base64.
RASPBERRY_PI = (
    "otpauth-migration://offline?data="
    "CjUKEPqlBekzoNEukL7qlsjBCDYSDnBpQHJhc3BiZXJyeXBpGgtyYXNwYmVycnlwaSABKAEwAhABGAEgACjr4JKK"
    "%2B%2F%2F%2F%2F%2F8B"
)
# Two accounts: ACME Co:john.doe@example.com (HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ) and
# Example:alice@google.com (JBSWY3DPEHPK3PXP).
TWO_ACCOUNTS = (
    "otpauth-migration://offline?data="
    "CkMKFD3GyqSCSm0oh2eyMx4gtDFmy4XZEhxBQ01FIENvOmpvaG4uZG9lQGV4YW1wbGUuY29tGgdBQ01FIENvIAEoATAC"
    "CjUKCkhlbGxvId6tvu8SGEV4YW1wbGU6YWxpY2VAZ29vZ2xlLmNvbRoHRXhhbXBsZSABKAEwAhABGAEgACjn4Pv4Ag=="
)


# A protobuf writer for crafted exports, independent of totpd's reader.
def varint(value: int) -> bytes:
    """Protobuf base-128 varint (negative numbers as 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes | str) -> bytes:
    """One protobuf field: varint for int, length-delimited for bytes and str."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(raw)) + raw


def account(
    secret: bytes,
    name: str,
    issuer: str = "",
    algorithm: int = 1,
    digits: int = 1,
    kind: int = 2,
    counter: int = 0,
) -> bytes:
    """An OtpParameters message."""
    return (
        field(1, secret)
        + field(2, name)
        + (field(3, issuer) if issuer else b"")
        + field(4, algorithm)
        + field(5, digits)
        + field(6, kind)
        + (field(7, counter) if counter else b"")
    )


def export(*accounts: bytes, batch_size: int = 1, batch_index: int = 0) -> str:
    """An otpauth-migration URI over these accounts."""
    payload = b"".join(field(1, a) for a in accounts)
    payload += field(2, 1) + field(3, batch_size) + field(4, batch_index) + field(5, 12345)
    return "otpauth-migration://offline?data=" + quote(base64.b64encode(payload).decode(), safe="")


SECRET_A = bytes(range(20))
SECRET_B = bytes(range(100, 120))


def b32(raw: bytes) -> str:
    """Base32 with padding, as totpd stores secrets."""
    return base64.b32encode(raw).decode()


def test_a_real_single_account_export() -> None:
    (found,) = parse_text(EXAMPLE_ALICE)
    assert found.secret == "JBSWY3DPEHPK3PXP"
    assert (found.account.name, found.account.label, found.account.issuer) == (
        "example",
        "Example",
        "Example",
    )
    assert (found.account.kind, found.account.digits, found.account.period_s) == (
        Kind.TOTP,
        6,
        30,
    )


def test_a_real_export_with_a_negative_batch_id() -> None:
    (found,) = parse_text(RASPBERRY_PI)
    assert found.secret == "7KSQL2JTUDIS5EF65KLMRQIIGY======"
    assert (found.account.name, found.account.issuer) == ("raspberrypi", "raspberrypi")


def test_a_real_export_of_two_accounts() -> None:
    found = parse_text(TWO_ACCOUNTS)
    assert [(e.account.name, e.account.label, e.secret) for e in found] == [
        ("acme-co", "ACME Co", "HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ"),
        ("example", "Example", "JBSWY3DPEHPK3PXP"),
    ]


def test_unescaped_base64_is_read_too() -> None:
    raw = RASPBERRY_PI.replace("%2B", "+").replace("%2F", "/")
    assert parse_text(raw)[0].secret == "7KSQL2JTUDIS5EF65KLMRQIIGY======"


def test_parameters_of_every_kind_and_the_codes_they_give() -> None:
    uri = export(
        account(SECRET_A, "alice@example.com", "GitHub"),
        account(SECRET_B, "bob", "Bank", algorithm=2, digits=2),
        account(SECRET_A, "Vault:ops", "", algorithm=3, kind=1, counter=7),
    )
    github, bank, vault = parse_text(uri)
    assert totp_at(github.account, github.secret, 1_700_000_000) == pyotp.TOTP(b32(SECRET_A)).at(
        1_700_000_000
    )
    assert (bank.account.algorithm, bank.account.digits) == ("SHA256", 8)
    import hashlib

    reference = pyotp.TOTP(b32(SECRET_B), digits=8, digest=hashlib.sha256)
    assert totp_at(bank.account, bank.secret, 1_700_000_000) == reference.at(1_700_000_000)
    # The issuer comes from the name's prefix when the issuer field is empty.
    assert (vault.account.name, vault.account.issuer, vault.account.kind) == (
        "vault",
        "Vault",
        Kind.HOTP,
    )
    assert (vault.account.algorithm, vault.account.counter) == ("SHA512", 7)
    reference_hotp = pyotp.HOTP(b32(SECRET_A), digest=hashlib.sha512)
    assert hotp_at(vault.account, vault.secret, 7) == reference_hotp.at(7)


def test_accounts_sharing_an_issuer_get_distinct_names_and_labels() -> None:
    uri = export(
        account(SECRET_A, "alice@gmail.com", "Google"),
        account(SECRET_B, "bob@gmail.com", "Google"),
        account(SECRET_A, "alice@gmail.com", "Google"),
        account(SECRET_B, "", ""),
        account(SECRET_A, "", ""),
    )
    names = [(e.account.name, e.account.label) for e in parse_text(uri)]
    assert names == [
        ("google-alice", "Google alice"),
        ("google-bob", "Google bob"),
        ("google-alice-2", "Google alice 2"),
        ("account", "account"),
        ("account-2", "account 2"),
    ]


def test_a_multi_part_export_says_which_part_it_is(caplog: pytest.LogCaptureFixture) -> None:
    uri = export(account(SECRET_A, "a", "A"), batch_size=3, batch_index=1)
    _found, batch = parse_migration(uri)
    assert (batch.index, batch.size) == (2, 3)
    parse_text(uri)
    assert "QR code 2 of 3" in caplog.text


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (export(account(SECRET_A, "x", "X", algorithm=4)), "MD5 codes are not supported"),
        (export(account(SECRET_A, "x", "X", digits=7)), "unknown algorithm, digit count or type"),
        (export(account(SECRET_A, "x", "X", kind=9)), "unknown algorithm, digit count or type"),
        (export(account(b"", "x", "X")), "account 1: no secret"),
        (export(account(b"short", "x", "X")), "too short"),
        (export(), "holds no accounts"),
        ("otpauth-migration://offline?data=%%%%", "not valid base64"),
        ("otpauth-migration://offline?nodata=1", "expected one data parameter"),
        ("otpauth-migration://online?data=AAAA", "not an otpauth-migration://offline URI"),
        (EXAMPLE_ALICE[:-12], "malformed data"),
        ("otpauth-migration://offline?data=" + base64.b64encode(b"\x0b\x01").decode(), "wire"),
        (
            "otpauth-migration://offline?data=" + base64.b64encode(b"\x08" + b"\xff" * 11).decode(),
            "varint",
        ),
        ("otpauth-migration://offline?data=" + base64.b64encode(b"\x0a\x05ab").decode(), "past"),
    ],
)
def test_bad_exports_are_refused_clearly(uri: str, message: str) -> None:
    with pytest.raises(EnrolError, match=message):
        parse_text(uri)


def test_errors_name_the_account_but_never_its_secret() -> None:
    uri = export(account(SECRET_A, "ok", "OK"), account(SECRET_B, "md5", "Old", algorithm=4))
    with pytest.raises(EnrolError, match="account 2") as caught:
        parse_text(uri)
    assert b32(SECRET_B).rstrip("=") not in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_accounts_or_a_clear_error(payload: bytes) -> None:
    uri = "otpauth-migration://offline?data=" + quote(base64.b64encode(payload).decode(), safe="")
    try:
        found = parse_text(uri)
    except EnrolError:
        return  # the one kind of failure allowed: a clear message, never a crash
    assert found
    assert len({e.account.name for e in found}) == len(found)
