"""`totpd account import --file` as a sysadmin runs it: a real process, the passphrase on stdin.

Every refusal leaves the state directory byte for byte as it was, and neither the passphrase
nor any secret ever reaches standard output or standard error.
"""

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pyotp
import pytest

from tests.cli.test_accounts import state_files
from tests.enrol import backup_writers as write
from tests.enrol.backup_writers import PASSPHRASE, SAMPLES
from tests.enrol.test_backups import (
    _aegis_slot,
    _andotp_rounds,
    _ente_params,
    tampered_aegis,
    tampered_andotp,
    tampered_ente,
    tampered_twofas,
)
from tests.helpers import run_totpd

ENCRYPTED: dict[str, Callable[[], bytes]] = {
    "aegis": lambda: write.aegis(SAMPLES, PASSPHRASE),
    "2fas": lambda: write.twofas(SAMPLES, PASSPHRASE),
    "andotp": lambda: write.andotp(SAMPLES, PASSPHRASE),
    "ente": lambda: write.ente(SAMPLES, PASSPHRASE),
}
GITHUB = SAMPLES[0]


def no_secret_in(*texts: str) -> None:
    """Neither the passphrase nor any secret (nor a long piece of one) is in `texts`."""
    for text in texts:
        assert PASSPHRASE not in text
        for sample in SAMPLES:
            assert sample.secret not in text
            assert sample.secret[:16] not in text


def import_file(
    config_path: Path, path: Path, *args: str, stdin: str = PASSPHRASE + "\n"
) -> subprocess.CompletedProcess[str]:
    """`totpd account import --file PATH ARGS`, the passphrase line on stdin."""
    return run_totpd(config_path, "account", "import", "--file", str(path), *args, stdin=stdin)


@pytest.mark.parametrize("format_name", ENCRYPTED)
def test_an_encrypted_backup_is_enrolled_whole(
    format_name: str, config_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / f"backup.{format_name}"
    path.write_bytes(ENCRYPTED[format_name]())
    result = import_file(config_path, path, "--format", format_name)
    assert result.returncode == 0, result.stderr
    no_secret_in(result.stdout, result.stderr)
    listed = run_totpd(config_path, "account", "list").stdout.splitlines()
    assert [line.split("\t")[:6] for line in listed] == [
        ["github", "GitHub", "totp", "SHA1", "6", "30s"],
        ["bank", "Bank", "totp", "SHA256", "8", "60s"],
        ["cloud", "Cloud", "totp", "SHA512", "10", "20s"],
        ["shop", "Shop", "totp", "SHA1", "5", "45s"],
        ["forge", "Forge", "hotp", "SHA1", "7", "#42"],
        ["mail", "Mail", "hotp", "SHA512", "9", "#7"],
        ["steam", "Steam", "steam", "SHA1", "5", "30s"],
    ]
    now = time.time()
    code = run_totpd(config_path, "account", "code", "github").stdout.split()[0]
    assert code in {pyotp.TOTP(GITHUB.secret).at(now + d) for d in (-30, 0, 30)}
    forge = SAMPLES[4]
    hotp = pyotp.HOTP(forge.secret, digits=7).at(forge.counter)
    assert run_totpd(config_path, "account", "code", "forge").stdout.strip() == hotp


def test_format_auto_recognises_each_file(config_path: Path, tmp_path: Path) -> None:
    for format_name, make in ENCRYPTED.items():
        path = tmp_path / f"backup-{format_name}"
        path.write_bytes(make())
        result = import_file(config_path, path, "--dry-run")
        assert result.returncode == 0, (format_name, result.stderr)
        assert result.stdout.splitlines()[-1] == "steam\tSteam\tsteam\t5\t30s"
    assert state_files(config_path) == {}


def test_a_plain_backup_reads_no_stdin_and_a_dry_run_stores_nothing(
    config_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "aegis.json"
    path.write_bytes(write.aegis(SAMPLES))
    result = import_file(config_path, path, "--dry-run", stdin="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "github\tGitHub\ttotp\t6\t30s",
        "bank\tBank\ttotp\t8\t60s",
        "cloud\tCloud\ttotp\t10\t20s",
        "shop\tShop\ttotp\t5\t45s",
        "forge\tForge\thotp\t7\t#42",
        "mail\tMail\thotp\t9\t#7",
        "steam\tSteam\tsteam\t5\t30s",
    ]
    no_secret_in(result.stdout, result.stderr)
    assert state_files(config_path) == {}


def test_a_uri_list_file_is_imported(config_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "uris.txt"
    path.write_bytes(write.uri_list(SAMPLES))
    result = import_file(config_path, path, "--format", "uri", stdin="")
    assert result.returncode == 0, result.stderr
    assert "enrolled steam ('Steam', steam, 5 digits)" in result.stdout


def test_control_characters_from_a_file_are_escaped(config_path: Path, tmp_path: Path) -> None:
    hostile = write.Sample("Evil\x1b[2J\x07Corp", "x\rme", GITHUB.secret, "totp")
    path = tmp_path / "hostile.json"
    path.write_bytes(write.aegis((hostile,)))
    result = import_file(config_path, path, "--dry-run", stdin="")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "\x07" not in result.stdout
    assert "\r" not in result.stdout
    assert result.stdout.startswith("evil-2j-corp\tEvil[2JCorp\t")


def test_a_taken_name_enrols_nothing(config_path: Path, tmp_path: Path) -> None:
    run_totpd(config_path, "account", "add", "bank", "--label", "Bank", stdin=GITHUB.secret)
    before = state_files(config_path)
    path = tmp_path / "backup.2fas"
    path.write_bytes(write.twofas(SAMPLES, PASSPHRASE))
    result = import_file(config_path, path)
    assert result.returncode == 1
    assert "already enrolled: bank" in result.stderr
    assert state_files(config_path) == before


def _unknown_aegis_version() -> bytes:
    document = json.loads(write.aegis(SAMPLES, PASSPHRASE))
    document["version"] = 2
    return json.dumps(document).encode()


REFUSALS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    # name: (the file, the passphrase given, words of the one-line error)
    "aegis-wrong-passphrase": (ENCRYPTED["aegis"], "hunter2", "wrong passphrase"),
    "2fas-wrong-passphrase": (ENCRYPTED["2fas"], "hunter2", "wrong passphrase"),
    "andotp-wrong-passphrase": (ENCRYPTED["andotp"], "hunter2", "passphrase is wrong"),
    "ente-wrong-passphrase": (ENCRYPTED["ente"], "hunter2", "passphrase is wrong"),
    "aegis-truncated": (lambda: ENCRYPTED["aegis"]()[:900], PASSPHRASE, "truncated"),
    "andotp-truncated": (lambda: ENCRYPTED["andotp"]()[:30], PASSPHRASE, "truncated"),
    "ente-truncated": (lambda: ENCRYPTED["ente"]()[:-40], PASSPHRASE, "truncated"),
    "aegis-tampered": (tampered_aegis, PASSPHRASE, "damaged or were altered"),
    "2fas-tampered": (tampered_twofas, PASSPHRASE, "damaged or were altered"),
    "andotp-tampered": (tampered_andotp, PASSPHRASE, "damaged or altered"),
    "ente-tampered": (tampered_ente, PASSPHRASE, "damaged or altered"),
    "aegis-unknown-version": (_unknown_aegis_version, PASSPHRASE, "unknown vault version"),
    "aegis-scrypt-2^40": (
        lambda: _aegis_slot(n=2**40),
        PASSPHRASE,
        "refused as damaged or hostile",
    ),
    "andotp-billion-rounds": (
        lambda: _andotp_rounds(10**9),
        PASSPHRASE,
        "refused as damaged or hostile",
    ),
    "ente-64GiB": (lambda: _ente_params(memLimit=64 << 30), PASSPHRASE, "damaged or hostile"),
    "no-passphrase": (ENCRYPTED["2fas"], "", "no passphrase was given"),
    "oversized": (lambda: b"[" + b" " * (16 << 20) + b"]", "", "too large"),
}


@pytest.mark.parametrize("refusal", REFUSALS)
def test_each_refusal_is_one_line_and_stores_nothing(
    refusal: str, config_path: Path, tmp_path: Path
) -> None:
    run_totpd(config_path, "account", "add", "first", "--label", "First", stdin=GITHUB.secret)
    before = state_files(config_path)
    make, passphrase, words = REFUSALS[refusal]
    path = tmp_path / "backup"
    path.write_bytes(make())
    result = import_file(config_path, path, stdin=passphrase + "\n")
    assert result.returncode == 1
    assert result.stderr.startswith(f"totpd: error: {path}: ")
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # no traceback
    assert result.stdout == ""
    no_secret_in(result.stderr)
    assert state_files(config_path) == before


def test_file_and_qr_do_not_go_together(config_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(write.aegis(SAMPLES))
    result = import_file(config_path, path, "--qr", str(path))
    assert result.returncode == 1
    assert "--file and --qr do not go together" in result.stderr


def test_a_missing_file_is_one_clear_error(config_path: Path, tmp_path: Path) -> None:
    result = import_file(config_path, tmp_path / "nope.json")
    assert result.returncode == 1
    assert "cannot read the file (No such file or directory)" in result.stderr
