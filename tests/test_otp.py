"""TOTP and HOTP against the RFCs' own test vectors, base32 tolerance, the near-expiry rule."""

import base64
import hashlib
import hmac
import struct

import pytest

from tests.helpers import UNPRINTABLE
from totpd.errors import EnrolError
from totpd.otp import Account, Kind, hotp_at, normalize_base32, reading_at, totp_at

# RFC 6238 Appendix B: the seeds are ASCII "1234567890" repeated to the hash's size.
RFC6238_SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC6238_VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]
# RFC 4226 Appendix D: HOTP, SHA1, seed "12345678901234567890", counters 0..9.
RFC4226_CODES = [
    "755224",
    "287082",
    "359152",
    "969429",
    "338314",
    "254676",
    "287922",
    "162583",
    "399871",
    "520489",
]


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode()


@pytest.mark.parametrize(("unix_s", "sha1", "sha256", "sha512"), RFC6238_VECTORS)
def test_totp_matches_rfc6238_appendix_b(unix_s: int, sha1: str, sha256: str, sha512: str) -> None:
    for algorithm, expected in (("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)):
        account = Account("rfc", "RFC", algorithm=algorithm, digits=8, period_s=30)
        assert totp_at(account, b32(RFC6238_SEEDS[algorithm]), unix_s) == expected


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(RFC4226_CODES)))
def test_hotp_matches_rfc4226_appendix_d(counter: int, expected: str) -> None:
    account = Account("rfc", "RFC", kind=Kind.HOTP)
    assert hotp_at(account, b32(RFC6238_SEEDS["SHA1"]), counter) == expected


def test_base32_tolerates_case_spaces_and_missing_padding() -> None:
    canonical = normalize_base32("JBSWY3DPEHPK3PXP")
    assert normalize_base32("jbsw y3dp ehpk 3pxp") == canonical
    assert normalize_base32("JBSWY-3DPEH-PK3PXP") == canonical
    # 20 bytes encode to 32 characters with no padding; 11 bytes need padding.
    eleven = b32(b"abcdefghijk")
    assert normalize_base32(eleven.rstrip("=")) == eleven


@pytest.mark.parametrize("bad", ["", "not base32!", "JBSWY3DP1", "AAAA"])
def test_invalid_base32_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(EnrolError) as caught:
        normalize_base32(bad)
    assert not bad or bad not in str(caught.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"algorithm": "MD5"},
        {"digits": 4},
        {"digits": 11},
        {"period_s": 0},
        {"name": "Bad Name"},
        {"label": ""},
    ],
)
def test_impossible_accounts_are_refused(fields: dict[str, object]) -> None:
    base: dict[str, object] = {"name": "ok", "label": "OK"}
    with pytest.raises(EnrolError):
        Account(**{**base, **fields})  # type: ignore[arg-type]


SEED = b32(RFC6238_SEEDS["SHA1"])
ACCOUNT = Account("rfc", "RFC", digits=8)


def test_reading_with_time_to_spare_is_the_current_code() -> None:
    reading = reading_at(ACCOUNT, SEED, 1111111109 - 19, min_seconds_left=8)  # 20 s left in period
    assert reading.wait_s == 0
    assert reading.seconds_left == 20
    assert reading.digits == totp_at(ACCOUNT, SEED, 1111111109 - 19)


def test_reading_near_expiry_waits_for_the_next_period() -> None:
    # 1111111109 is 29 s into its period: 1 s left, fewer than 8.
    reading = reading_at(ACCOUNT, SEED, 1111111109, min_seconds_left=8)
    assert reading.wait_s == 1
    assert reading.seconds_left == 30
    assert reading.digits == "14050471"  # RFC vector for 1111111111, the next period
    assert reading.digits != totp_at(ACCOUNT, SEED, 1111111109)


def test_hotp_reading_has_no_expiry() -> None:
    account = Account("h", "H", kind=Kind.HOTP, counter=3)
    reading = reading_at(account, SEED, 0, min_seconds_left=8)
    assert (reading.digits, reading.seconds_left) == (RFC4226_CODES[3][-6:], None)


def reference_hotp(key: bytes, counter: int, digits: int = 6) -> str:
    """RFC 4226 section 5.3, written out independently of pyotp."""
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def test_short_secrets_and_long_periods_still_give_codes() -> None:
    # 80-bit secrets (common in Google Authenticator exports) and periods over 120 s.
    key = b"0123456789"  # 80 bits
    account = Account("short", "Short", period_s=300)
    assert totp_at(account, b32(key), 1_000_000) == reference_hotp(key, 1_000_000 // 300)
    assert reading_at(account, b32(key), 1_000_000, min_seconds_left=8).seconds_left == 200


@pytest.mark.parametrize("hidden", UNPRINTABLE.values(), ids=UNPRINTABLE.keys())
def test_a_spoken_label_with_an_unprintable_character_is_refused(hidden: str) -> None:
    with pytest.raises(EnrolError) as refused:
        Account("github", f"Git{hidden}Hub")
    first = next(c for c in hidden if not c.isprintable())
    assert f"U+{ord(first):04X}" in str(refused.value)
    assert str(refused.value).isprintable()  # the message never carries the character


@pytest.mark.parametrize("hidden", UNPRINTABLE.values(), ids=UNPRINTABLE.keys())
def test_an_issuer_keeps_only_its_printable_characters(hidden: str) -> None:
    issuer = Account("github", "GitHub", issuer=f"Git{hidden}Hub").issuer
    assert issuer.isprintable()
    assert issuer.startswith("Git")
    assert issuer.endswith("Hub")


def rfc4226_by_hand(secret: bytes, counter: int, digits: int, digestmod: str) -> str:
    """RFC 4226 section 5.3, computed here without pyotp: truncate, then mod 10**digits."""
    digest = hmac.new(secret, struct.pack(">Q", counter), digestmod).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


@pytest.mark.parametrize("digits", [5, 6, 7, 8, 9, 10])
@pytest.mark.parametrize("algorithm", ["SHA1", "SHA256", "SHA512"])
def test_every_code_length_from_5_to_10_digits(digits: int, algorithm: str) -> None:
    seed = RFC6238_SEEDS[algorithm]
    account = Account("long", "Long", kind=Kind.HOTP, algorithm=algorithm, digits=digits)
    for counter in (0, 1, 7, 123_456, 2**40):
        expected = rfc4226_by_hand(seed, counter, digits, algorithm.lower())
        assert hotp_at(account, b32(seed), counter) == expected


@pytest.mark.parametrize("digits", [4, 11])
def test_code_lengths_outside_5_to_10_are_refused(digits: int) -> None:
    with pytest.raises(EnrolError, match="digits must be 5 to 10"):
        Account("x", "X", digits=digits)
