"""Backup files of authenticator apps: every format, plain and encrypted, and every refusal.

The files come from tests/enrol/backup_writers.py, written from the apps' published formats.
"""

import base64
import json
import struct
import time
from collections.abc import Callable
from pathlib import Path

import lib2fas
import pytest
from argon2.low_level import Type, hash_secret_raw

from tests.enrol import backup_writers as write
from tests.enrol.backup_writers import PASSPHRASE, SAMPLES, Sample
from totpd.enrol import Enrolment
from totpd.enrol.backups import MAX_FILE_BYTES, parse_backup
from totpd.enrol.backups.crypto import argon2id_key
from totpd.errors import EnrolError
from totpd.otp import normalize_base32

TOTP_ONLY = tuple(s for s in SAMPLES if s.type_name == "totp")
# (format name, the samples it holds, the file's bytes, whether it is encrypted)
Case = tuple[str, tuple[Sample, ...], Callable[[], bytes], bool]
CASES: dict[str, Case] = {
    "aegis-plain": ("aegis", SAMPLES, lambda: write.aegis(SAMPLES), False),
    "aegis-encrypted": ("aegis", SAMPLES, lambda: write.aegis(SAMPLES, PASSPHRASE), True),
    "2fas-plain-v4": ("2fas", SAMPLES, lambda: write.twofas(SAMPLES), False),
    "2fas-encrypted-v4": ("2fas", SAMPLES, lambda: write.twofas(SAMPLES, PASSPHRASE), True),
    "2fas-plain-v3": ("2fas", TOTP_ONLY, lambda: write.twofas(TOTP_ONLY, schema=3), False),
    "2fas-encrypted-v3": (
        "2fas",
        TOTP_ONLY,
        lambda: write.twofas(TOTP_ONLY, PASSPHRASE, schema=3),
        True,
    ),
    "andotp-plain": ("andotp", SAMPLES, lambda: write.andotp(SAMPLES), False),
    "andotp-encrypted": ("andotp", SAMPLES, lambda: write.andotp(SAMPLES, PASSPHRASE), True),
    "ente-encrypted": ("ente", SAMPLES, lambda: write.ente(SAMPLES, PASSPHRASE), True),
    "uri-list": ("uri", SAMPLES, lambda: write.uri_list(SAMPLES), False),
}


def expected(samples: tuple[Sample, ...]) -> list[tuple[object, ...]]:
    """What each sample must become: issuers are unique, so the issuer names the account."""
    rows: list[tuple[object, ...]] = []
    for s in samples:
        timing = s.counter if s.type_name == "hotp" else s.period_s
        secret = normalize_base32(s.secret)
        rows.append(
            (s.issuer.lower(), s.issuer, s.type_name, s.algorithm, s.digits, timing, secret)
        )
    return rows


def described(enrolments: list[Enrolment]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for e in enrolments:
        a = e.account
        timing = a.counter if a.type_name == "hotp" else a.period_s
        rows.append((a.name, a.label, a.type_name, a.algorithm, a.digits, timing, e.secret))
    return rows


def refused_without_asking(raw: bytes, format_name: str = "auto") -> str:
    def no_passphrase() -> str:
        raise AssertionError("the passphrase was asked for")

    with pytest.raises(EnrolError) as caught:
        parse_backup(raw, format_name, no_passphrase)
    return str(caught.value)


def refused(raw: bytes, format_name: str = "auto", passphrase: str = PASSPHRASE) -> str:
    with pytest.raises(EnrolError) as caught:
        parse_backup(raw, format_name, lambda: passphrase)
    message = str(caught.value)
    assert passphrase not in message
    return message


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("how", ["auto", "named"])
def test_every_format_gives_every_account_and_parameter(case: str, how: str) -> None:
    format_name, samples, make, encrypted = CASES[case]
    asked: list[bool] = []

    def passphrase() -> str:
        asked.append(True)
        return PASSPHRASE

    enrolments = parse_backup(make(), "auto" if how == "auto" else format_name, passphrase)
    assert described(enrolments) == expected(samples)
    assert asked == ([True] if encrypted else [])


def test_an_independent_2fas_reader_decrypts_the_test_files(tmp_path: Path) -> None:
    path = tmp_path / "backup.2fas"
    path.write_bytes(write.twofas(SAMPLES, PASSPHRASE))
    storage = lib2fas.load_services(path, passphrase=PASSPHRASE)
    assert storage is not None
    assert sorted((s.name, s.secret) for s in storage) == sorted(
        (s.issuer, s.secret) for s in SAMPLES
    )


def test_libsodium_and_argon2_cffi_derive_the_same_ente_key() -> None:
    salt = bytes(range(16))
    ours = argon2id_key(PASSPHRASE, salt, passes=3, memory_bytes=16 << 20, what="test")
    theirs = hash_secret_raw(PASSPHRASE.encode(), salt, 3, 16 << 10, 1, 32, Type.ID, 19)
    assert ours == theirs


# --- refusals: one clear error each ---------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: write.aegis(SAMPLES, PASSPHRASE),
        lambda: write.twofas(SAMPLES, PASSPHRASE),
        lambda: write.andotp(SAMPLES, PASSPHRASE),
        lambda: write.ente(SAMPLES, PASSPHRASE),
    ],
    ids=["aegis", "2fas", "andotp", "ente"],
)
def test_a_wrong_passphrase_is_refused(make: Callable[[], bytes]) -> None:
    assert "passphrase" in refused(make(), passphrase="Tr0ub4dor&3")


def test_aegis_and_2fas_tell_a_wrong_passphrase_from_altered_contents() -> None:
    assert refused(write.aegis(SAMPLES, PASSPHRASE), passphrase="x").startswith(
        "Aegis vault: wrong passphrase"
    )
    assert (
        refused(write.twofas(SAMPLES, PASSPHRASE), passphrase="x")
        == "2FAS backup: wrong passphrase"
    )


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def tampered_aegis() -> bytes:
    document = json.loads(write.aegis(SAMPLES, PASSPHRASE))
    document["db"] = _flip(document["db"])
    return json.dumps(document).encode()


def tampered_twofas() -> bytes:
    document = json.loads(write.twofas(SAMPLES, PASSPHRASE))
    ciphertext, salt, nonce = document["servicesEncrypted"].split(":")
    document["servicesEncrypted"] = f"{_flip(ciphertext)}:{salt}:{nonce}"
    return json.dumps(document).encode()


def tampered_andotp() -> bytes:
    raw = bytearray(write.andotp(SAMPLES, PASSPHRASE))
    raw[40] ^= 1
    return bytes(raw)


def tampered_ente() -> bytes:
    document = json.loads(write.ente(SAMPLES, PASSPHRASE))
    document["encryptedData"] = _flip(document["encryptedData"])
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (tampered_aegis, "passphrase is right but the vault's contents are damaged"),
        (tampered_twofas, "passphrase is right but the accounts are damaged"),
        (tampered_andotp, "damaged or altered"),
        (tampered_ente, "damaged or altered"),
    ],
    ids=["aegis", "2fas", "andotp", "ente"],
)
def test_tampered_ciphertext_is_refused(make: Callable[[], bytes], words: str) -> None:
    assert words in refused(make())


@pytest.mark.parametrize("case", CASES)
def test_a_truncated_file_is_refused(case: str) -> None:
    format_name, _samples, make, _encrypted = CASES[case]
    raw = make()
    # A URI list cut short is cut inside its first URI's secret.
    cut = raw.index(b"secret=") + 12 if format_name == "uri" else len(raw) * 2 // 3
    refused(raw[:cut], format_name)


@pytest.mark.parametrize(
    ("format_name", "raw", "words"),
    [
        ("aegis", write.aegis(SAMPLES).replace(b'"version": 1', b'"version": 2', 1), "version"),
        ("aegis", write.aegis(SAMPLES).replace(b'"version": 3', b'"version": 9'), "version"),
        ("2fas", write.twofas(SAMPLES).replace(b'"schemaVersion": 4', b'"schemaVersion": 5'), ""),
        ("ente", write.ente(SAMPLES, PASSPHRASE).replace(b'"version": 1', b'"version": 2'), ""),
    ],
    ids=["aegis-vault", "aegis-content", "2fas", "ente"],
)
def test_an_unknown_version_is_refused(format_name: str, raw: bytes, words: str) -> None:
    assert "unknown" in refused_without_asking(raw, format_name)
    assert "version" in refused_without_asking(raw)


def _aegis_slot(**changes: int) -> bytes:
    document = json.loads(write.aegis(SAMPLES, PASSPHRASE))
    document["header"]["slots"][0].update(changes)
    return json.dumps(document).encode()


def _ente_params(**changes: int) -> bytes:
    document = json.loads(write.ente(SAMPLES, PASSPHRASE))
    document["kdfParams"].update(changes)
    return json.dumps(document).encode()


def _andotp_rounds(rounds: int) -> bytes:
    return struct.pack(">I", rounds) + write.andotp(SAMPLES, PASSPHRASE)[4:]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (_aegis_slot(n=2**40), "asks scrypt for"),
        (_aegis_slot(n=2**20, r=64), "asks scrypt for"),
        (_aegis_slot(p=2**30), "malformed scrypt"),
        (_aegis_slot(n=3), "malformed scrypt"),
        (_andotp_rounds(1_000_000_000), "1,000,000,000 PBKDF2 rounds"),
        (_andotp_rounds(0), "0 PBKDF2 rounds"),
        (_ente_params(memLimit=64 << 30), "65536 MiB"),
        (_ente_params(memLimit=1 << 30, opsLimit=1000), "1000 passes"),
        (_ente_params(opsLimit=2**40), "passes"),
    ],
    ids=[
        "scrypt-N-2^40",
        "scrypt-1GiB",
        "scrypt-p",
        "scrypt-N-odd",
        "pbkdf2-billion",
        "pbkdf2-zero",
        "argon2-64GiB",
        "argon2-4TiB-passes",
        "argon2-2^40-passes",
    ],
)
def test_absurd_kdf_parameters_are_refused_before_any_work(raw: bytes, words: str) -> None:
    started_s = time.monotonic()
    message = refused(raw)
    assert words in message
    assert "refused" in message or "malformed" in message
    assert time.monotonic() - started_s < 1.0  # refused up front, not after hours of work


def test_the_real_apps_kdf_costs_are_within_the_caps() -> None:
    """Aegis's fixed scrypt, andOTP's highest rounds, ente's sensitive Argon2: all admitted."""
    from totpd.enrol.backups import crypto

    assert crypto.MAX_SCRYPT_BYTES >= 128 * 2**15 * 8
    assert crypto.MAX_PBKDF2_ROUNDS >= 160_000
    assert crypto.MAX_ARGON2_BYTES >= 1 << 30
    assert crypto.MAX_ARGON2_WORK_BYTES >= 4 * (1 << 30)  # 1 GiB x 4 passes, or 256 MiB x 16


def test_an_oversized_file_is_refused_unread() -> None:
    raw = b"[" + b" " * MAX_FILE_BYTES + b"]"
    assert "too large" in refused_without_asking(raw)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"type": "yandex"}, "'yandex' codes are not supported"),
        ({"type": "motp"}, "'motp' codes are not supported"),
        ({"digits": "6"}, "digits is not a whole number"),
        ({"digits": True}, "digits is not a whole number"),
        ({"digits": 4}, "digits must be 5 to 10"),
        ({"counter": -1}, "counter is not a whole number"),
        ({"period": 10**30}, "period is not a whole number"),
        ({"algo": "MD5"}, "unsupported algorithm"),
        ({"secret": "not base32!"}, "not valid base32"),
        ({"secret": "JBSWY3DP"}, "too short"),
        ({"name": ["a list"]}, "name is not text"),
    ],
)
def test_malformed_entries_are_refused_by_position(change: dict[str, object], words: str) -> None:
    document = json.loads(write.aegis(SAMPLES))
    entry = document["db"]["entries"][2]
    for key, value in change.items():
        (entry if key in ("type", "name") else entry["info"])[key] = value
    message = refused_without_asking(json.dumps(document).encode())
    assert message.startswith("Aegis vault, entry 3: ")
    assert words in message
    assert SAMPLES[2].secret not in message


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b" \n", "the file is empty"),
        (b"just some notes\nno uris here\n", "without any otpauth"),
        (b'{"some": "json"}', "no format totpd knows"),
        (b"[" * 100_000, "truncated or is not valid JSON"),
        (write.aegis(()), "holds no accounts"),
    ],
    ids=["empty", "notes", "other-json", "nested-bomb", "no-accounts"],
)
def test_files_of_no_known_format_are_refused(raw: bytes, words: str) -> None:
    assert words in refused_without_asking(raw)


def test_an_encrypted_file_named_as_the_wrong_format_is_refused() -> None:
    assert "not an Aegis vault" in refused_without_asking(write.twofas(SAMPLES), "aegis")
    assert "not a 2FAS backup" in refused_without_asking(write.aegis(SAMPLES), "2fas")
