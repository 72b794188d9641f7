"""`totpd secrets backup` / `restore`: a passphrase-encrypted copy that restores anywhere."""

import struct
from pathlib import Path

import pytest

from tests.helpers import (
    GITHUB_SEED,
    GMAIL_SEED,
    PIN,
    codes_near_now,
    enrol_demo,
    run_totpd,
    write_config,
)
from totpd import config as config_module
from totpd.config import Config
from totpd.errors import SecretStoreError
from totpd.pins import PinHasher
from totpd.roster import RosterFile
from totpd.secrets import open_store
from totpd.secrets.backup import MAGIC, Argon2Cost, Backup, open_backup, seal_backup

PASSPHRASE = "correct horse battery staple"
SIGNATURE = "stored-signature-secret-0123456789"


@pytest.fixture
def backup_file(config_path: Path, config: Config, tmp_path: Path) -> Path:
    """A backup of the demo roster (alice, github, gmail) and a stored signature secret."""
    enrol_demo(config)
    open_store(config).set_signature_secret(SIGNATURE)
    path = tmp_path / "totpd.backup"
    result = run_totpd(config_path, "secrets", "backup", str(path), stdin=PASSPHRASE + "\n")
    assert result.returncode == 0, result.stderr
    assert "backed up 2 accounts and 1 users" in result.stdout
    return path


def other_host(tmp_path: Path) -> Path:
    """A second, empty installation (its own state directory and vault key)."""
    home = tmp_path / "other"
    home.mkdir()
    return write_config(home)


def test_backup_and_restore_on_another_installation(backup_file: Path, tmp_path: Path) -> None:
    target = other_host(tmp_path)
    result = run_totpd(target, "secrets", "restore", str(backup_file), stdin=PASSPHRASE + "\n")
    assert result.returncode == 0, result.stderr
    assert "restored 2 accounts and 1 users" in result.stdout
    for name, seed in (("github", GITHUB_SEED), ("gmail", GMAIL_SEED)):
        code = run_totpd(target, "account", "code", name)
        assert code.stdout.split()[0] in codes_near_now(seed)
    restored = config_module.load(target)
    alice = RosterFile(restored.paths.state_dir).current().users["alice"]
    assert PinHasher(restored.pins).verify_sync(alice.pin_hash, PIN).ok
    store = open_store(restored)
    assert store.stored("vonage:signature-secret") == SIGNATURE
    # A different vault key on the other side: the vault file itself was not copied.
    source_key = (backup_file.parent / "state" / "vault.key").read_bytes()
    assert (restored.paths.state_dir / "vault.key").read_bytes() != source_key


def test_the_backup_is_private_and_holds_no_secret_in_clear(backup_file: Path) -> None:
    blob = backup_file.read_bytes()
    assert backup_file.stat().st_mode & 0o777 == 0o600
    assert blob.startswith(MAGIC)
    for clear in (GITHUB_SEED, GMAIL_SEED, SIGNATURE, "alice", "argon2id"):
        assert clear.encode() not in blob


def test_a_wrong_passphrase_restores_nothing(backup_file: Path, tmp_path: Path) -> None:
    target = other_host(tmp_path)
    result = run_totpd(target, "secrets", "restore", str(backup_file), stdin="wrong passphrase!\n")
    assert result.returncode == 1
    assert f"{backup_file}: wrong passphrase, or the backup is damaged" in result.stderr
    assert not (tmp_path / "other" / "state" / "directory.json").exists()
    assert not (tmp_path / "other" / "state" / "vault.bin").exists()


@pytest.mark.parametrize("offset", [9, 20, 40, -1], ids=["cost", "salt", "nonce", "tag"])
def test_a_tampered_backup_restores_nothing(backup_file: Path, tmp_path: Path, offset: int) -> None:
    blob = bytearray(backup_file.read_bytes())
    blob[offset] ^= 0x01
    backup_file.write_bytes(bytes(blob))
    target = other_host(tmp_path)
    result = run_totpd(target, "secrets", "restore", str(backup_file), stdin=PASSPHRASE + "\n")
    assert result.returncode == 1
    assert str(backup_file) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "other" / "state" / "directory.json").exists()


def test_a_truncated_backup_is_refused(backup_file: Path, tmp_path: Path) -> None:
    backup_file.write_bytes(backup_file.read_bytes()[:30])
    result = run_totpd(
        other_host(tmp_path), "secrets", "restore", str(backup_file), stdin=PASSPHRASE + "\n"
    )
    assert result.returncode == 1
    assert "backup file is truncated" in result.stderr


def test_a_crafted_cost_cannot_make_restore_eat_the_host(tmp_path: Path) -> None:
    blob = bytearray(seal_backup(Backup({}, {}), PASSPHRASE, Argon2Cost(1, 8192, 1)))
    struct.pack_into(">I", blob, len(MAGIC) + 1 + 4, 64 << 20)  # 64 GiB of memory
    with pytest.raises(SecretStoreError, match="unreasonable key-derivation cost"):
        open_backup(bytes(blob), PASSPHRASE, tmp_path / "crafted")


def test_restore_will_not_replace_an_installation_in_use_unless_forced(
    backup_file: Path, config_path: Path, config: Config
) -> None:
    run_totpd(config_path, "account", "remove", "gmail")
    refused = run_totpd(config_path, "secrets", "restore", str(backup_file), stdin=PASSPHRASE)
    assert refused.returncode == 1
    assert "already has accounts or users; restore --force replaces them" in refused.stderr
    assert "gmail" not in run_totpd(config_path, "account", "list").stdout
    forced = run_totpd(
        config_path, "secrets", "restore", "--force", str(backup_file), stdin=PASSPHRASE
    )
    assert forced.returncode == 0, forced.stderr
    code = run_totpd(config_path, "account", "code", "gmail")
    assert code.stdout.split()[0] in codes_near_now(GMAIL_SEED)


def test_a_short_passphrase_is_refused(config_path: Path, config: Config, tmp_path: Path) -> None:
    enrol_demo(config)
    path = tmp_path / "b"
    result = run_totpd(config_path, "secrets", "backup", str(path), stdin="short\n")
    assert result.returncode == 1
    assert "at least 10 characters" in result.stderr
    assert not path.exists()


def test_backup_does_not_overwrite_a_file_unless_forced(
    backup_file: Path, config_path: Path
) -> None:
    before = backup_file.read_bytes()
    again = run_totpd(config_path, "secrets", "backup", str(backup_file), stdin=PASSPHRASE)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert backup_file.read_bytes() == before


def test_set_signature_secret_reads_stdin_only(config_path: Path, config: Config) -> None:
    result = run_totpd(config_path, "secrets", "set-signature-secret", stdin=SIGNATURE + "\n")
    assert result.returncode == 0, result.stderr
    assert SIGNATURE not in result.stdout + result.stderr
    assert open_store(config).stored("vonage:signature-secret") == SIGNATURE
    with_argv = run_totpd(config_path, "secrets", "set-signature-secret", SIGNATURE)
    assert with_argv.returncode == 2  # no way to pass it on the command line
