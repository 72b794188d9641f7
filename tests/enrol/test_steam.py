"""Steam Guard codes: the algorithm against published vectors, enrolment routes, the voice.

Steam publishes no specification. The vectors are pyotp's own (its test suite, from
`pyotp.contrib.Steam`), and every code is also checked against a direct computation here:
HMAC-SHA1 over the period count, RFC 4226 dynamic truncation, then five base-26 characters of
Steam's alphabet, least significant first.
"""

import base64
import hashlib
import hmac
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pyotp.contrib import Steam

from tests.helpers import PIN, run_totpd
from tests.test_flow import CONFIG
from totpd.catalogues import find
from totpd.emulator import plain_text
from totpd.enrol import parse_text
from totpd.errors import EnrolError
from totpd.flow import Step
from totpd.ncco import SayCode, render
from totpd.otp import Account, Encoder, Kind, Reading, totp_at

ALPHABET = "23456789BCDFGHJKMNPQRTVWXY"
# pyotp's test suite (test.py, class SteamTOTP): secret -> code at t = 0, 30, 60, 90.
PYOTP_VECTORS = {
    "BASE32SECRET3232": ["2TC8B", "YKKK4", "M4HQB", "DTVB3"],
    "FMXNK4QEGKVPULRTADY6JIDK5VHUBGZW": ["C5V56", "QJY8Y", "R3WQY", "JG3T3"],
}
STEAM = Account("steam", "Steam", digits=5, encoder=Encoder.STEAM)
SECRET = "JRZCL47CMXVOQMNPZR2F7J4RGI"


def by_hand(secret: str, unix_s: int) -> str:
    """Steam's code computed from the description above, without pyotp."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", unix_s // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    chars = ""
    for _ in range(5):
        value, index = divmod(value, 26)
        chars += ALPHABET[index]
    return chars


@pytest.mark.parametrize(("secret", "codes"), PYOTP_VECTORS.items())
def test_steam_codes_match_the_published_vectors(secret: str, codes: list[str]) -> None:
    for period, expected in enumerate(codes):
        assert totp_at(STEAM, secret, period * 30) == expected
        assert by_hand(secret, period * 30) == expected


def test_steam_codes_match_pyotp_and_the_direct_computation_at_many_times() -> None:
    steam = Steam(SECRET)
    for unix_s in range(1_700_000_000, 1_700_000_000 + 300 * 30, 30 * 7 + 1):
        code = totp_at(STEAM, SECRET, unix_s)
        assert code == steam.at(unix_s) == by_hand(SECRET, unix_s)
        assert len(code) == 5
        assert set(code) <= set(ALPHABET)


def test_a_steam_account_must_be_sha1_time_based_and_five_characters() -> None:
    for wrong in ({"algorithm": "SHA256"}, {"kind": Kind.HOTP}, {"digits": 6}):
        with pytest.raises(EnrolError, match="Steam codes are time-based"):
            Account("s", "S", **{"digits": 5, "encoder": Encoder.STEAM, **wrong})  # type: ignore[arg-type]
    with pytest.raises(EnrolError, match="encoder"):
        Account("s", "S", encoder="base64")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "uri",
    [
        f"otpauth://totp/Steam:gabe?secret={SECRET}&issuer=Steam&digits=5&encoder=steam",
        f"otpauth://totp/Steam:gabe?secret={SECRET}&encoder=steam",  # digits left out
        f"otpauth://steam/Steam:gabe?secret={SECRET}&issuer=Steam",
        f"steam://{SECRET}",
    ],
)
def test_steam_enrols_from_each_uri_form(uri: str) -> None:
    (enrolment,) = parse_text(uri)
    account = enrolment.account
    assert (account.type_name, account.digits, account.kind) == ("steam", 5, Kind.TOTP)
    assert account.label == "Steam"
    assert totp_at(account, enrolment.secret, 1_700_000_000) == by_hand(SECRET, 1_700_000_000)


def test_an_unknown_encoder_is_refused() -> None:
    with pytest.raises(EnrolError, match="encoder must be steam"):
        parse_text(f"otpauth://totp/X?secret={SECRET}&encoder=yandex")


def test_a_steam_code_is_read_character_by_character_with_each_letter_spelled() -> None:
    ncco = render(
        [SayCode("Steam", Reading("2TC8Y", 20))],
        Step.ENDED,
        "https://x.test",
        CONFIG,
        find("en-GB"),
    )
    heard = plain_text(ncco[0]["text"])
    assert heard.startswith(
        "Your Steam code is: 2 T as in Tango C as in Charlie 8 Y as in Yankee."
        " Again: 2 T as in Tango"
    )
    assert '<say-as interpret-as="characters">T</say-as>' in ncco[0]["text"]


def test_account_code_prints_the_five_characters(config_path: Path) -> None:
    uri = f"otpauth://totp/Steam:gabe?secret={SECRET}&issuer=Steam&digits=5&encoder=steam"
    added = run_totpd(config_path, "account", "add", "steam", stdin=uri)
    assert added.returncode == 0, added.stderr
    assert "steam, 5 digits" in added.stdout
    before = int(time.time())
    printed = run_totpd(config_path, "account", "code", "steam").stdout.split()[0]
    assert printed in {by_hand(SECRET, before + d) for d in (-30, 0, 30)}
    assert "steam\tSteam\tsteam\tSHA1\t5\t30s" in run_totpd(config_path, "account", "list").stdout


def test_a_caller_hears_a_steam_code_spelled_in_the_emulator(
    daemon: Callable[..., tuple[Path, int]],
) -> None:
    config_path, _ = daemon()
    uri = f"otpauth://totp/Steam:gabe?secret={SECRET}&issuer=Steam&digits=5&encoder=steam"
    assert run_totpd(config_path, "account", "add", "steam", stdin=uri).returncode == 0
    assign = run_totpd(config_path, "user", "assign", "alice", "--accounts", "github,gmail,steam")
    assert assign.returncode == 0, assign.stderr
    call = run_totpd(config_path, "call", "--press", PIN, "--press", "3")
    assert call.returncode == 0, call.stdout + call.stderr
    assert "For Steam, press 3." in call.stdout
    read = re.search(r"Your Steam code is: (.+?)\. Again", call.stdout)
    assert read is not None, call.stdout
    heard = read[1]
    # Each character once, look-alike letters with their word ("B as in Bravo").
    code = re.sub(r" as in \S+", "", heard).replace(" ", "")
    now = int(time.time())
    assert code in {by_hand(SECRET, now + d) for d in (-30, 0, 30)}
    for char in code:
        if char in "BCDGPTVJKMNFXH":
            assert f"{char} as in " in heard
