"""totpd's vault: the file format, its attacks, concurrent and killed writers, and its key.

Every route to the key runs for real: the embedded key file, `systemd-creds` with the host key
(sealing, the admin CLI's unsealing, a credentials directory as systemd fills it), and the
`keyring` library finding the backend through its entry point.
"""

import logging
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.helpers import GITHUB_SEED, enrol_demo, run_totpd, write_config
from totpd import config as config_module
from totpd.config import Config
from totpd.errors import SecretStoreError, VaultError
from totpd.secrets import SecretStore, open_store
from totpd.secrets.vault import (
    HEADER_BYTES,
    MAGIC,
    NONCE_BYTES,
    VaultKeyring,
    key_id,
)

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
CREDENTIAL = "totpd-vault-key"


def new_vault(tmp_path: Path, key: bytes | None = None) -> VaultKeyring:
    """A vault in tmp_path with a fresh (or the given) key."""
    return VaultKeyring(tmp_path / "vault.bin", key or secrets.token_bytes(32), "test key")


def sealed_config(tmp_path: Path, extra: str = "") -> Path:
    """A config whose vault key is sealed in tmp_path/credstore (not /etc)."""
    cred = tmp_path / "credstore" / f"{CREDENTIAL}.cred"
    return write_config(tmp_path, f'[secrets]\nsealed_key_file = "{cred}"\n{extra}')


# the file ------------------------------------------------------------------------------------
def test_seeds_are_encrypted_in_a_private_versioned_file(tmp_path: Path) -> None:
    vault = new_vault(tmp_path)
    vault.set_password("totpd", "seed:github", SEED)
    blob = vault.path.read_bytes()
    assert blob.startswith(MAGIC + b"\x01")
    assert SEED.encode() not in blob
    assert b"github" not in blob  # entry names are secret-adjacent too: encrypted
    assert vault.path.stat().st_mode & 0o777 == 0o600
    reopened = VaultKeyring(vault.path, vault._key, "same key")
    assert reopened.get_password("totpd", "seed:github") == SEED


def test_each_write_uses_a_fresh_nonce(tmp_path: Path) -> None:
    vault = new_vault(tmp_path)
    vault.set_password("totpd", "seed:a", SEED)
    first = vault.path.read_bytes()
    vault.set_password("totpd", "seed:a", SEED)
    second = vault.path.read_bytes()
    assert (
        first[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
        != second[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
    )


def test_delete_and_missing_entries(tmp_path: Path) -> None:
    vault = new_vault(tmp_path)
    store = SecretStore(vault)
    store.set_seed("github", SEED)
    store.delete_seed("github")
    store.delete_seed("github")  # idempotent
    with pytest.raises(SecretStoreError, match="no seed for account 'github'"):
        store.seed("github")
    assert vault.entries() == {}


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (0, "not a totpd vault"),
        (len(MAGIC), "version 2 is not supported"),
        (len(MAGIC) + 1, "not the key this vault was written with"),
        (HEADER_BYTES, "corrupted or was tampered with"),
        (HEADER_BYTES + NONCE_BYTES + 3, "corrupted or was tampered with"),
        (-1, "corrupted or was tampered with"),
    ],
    ids=["magic", "version", "key-id", "nonce", "ciphertext", "tag"],
)
def test_tampered_vault_is_refused_naming_the_file(
    tmp_path: Path, offset: int, reason: str
) -> None:
    vault = new_vault(tmp_path)
    vault.set_password("totpd", "seed:github", SEED)
    blob = bytearray(vault.path.read_bytes())
    blob[offset] ^= 0x03
    vault.path.write_bytes(bytes(blob))
    with pytest.raises(VaultError, match=reason) as caught:
        vault.get_password("totpd", "seed:github")
    assert str(vault.path) in str(caught.value)
    assert SEED not in str(caught.value)


def test_a_write_to_a_tampered_vault_leaves_it_untouched(tmp_path: Path) -> None:
    vault = new_vault(tmp_path)
    vault.set_password("totpd", "seed:github", SEED)
    blob = bytearray(vault.path.read_bytes())
    blob[-5] ^= 0xFF
    vault.path.write_bytes(bytes(blob))
    with pytest.raises(VaultError):
        vault.set_password("totpd", "seed:gmail", SEED)
    assert vault.path.read_bytes() == bytes(blob)


@pytest.mark.parametrize("length", [0, 5, HEADER_BYTES + NONCE_BYTES, -1])
def test_truncated_vault_is_refused(tmp_path: Path, length: int) -> None:
    vault = new_vault(tmp_path)
    vault.set_password("totpd", "seed:github", SEED)
    blob = vault.path.read_bytes()
    vault.path.write_bytes(blob[:length])
    with pytest.raises(VaultError, match=r"truncated|tampered") as caught:
        vault.get_password("totpd", "seed:github")
    assert str(vault.path) in str(caught.value)


def test_wrong_key_is_told_apart_from_tampering(tmp_path: Path) -> None:
    new_vault(tmp_path).set_password("totpd", "seed:github", SEED)
    with pytest.raises(VaultError, match="the vault key from test key is not the key"):
        new_vault(tmp_path).get_password("totpd", "seed:github")


def test_ciphertext_not_bound_to_the_header_is_refused(tmp_path: Path) -> None:
    # A header that passes every check, over a ciphertext sealed without it as associated
    # data: only the AEAD binding catches this.
    key = secrets.token_bytes(32)
    header = MAGIC + b"\x01" + key_id(key)
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(key).encrypt(nonce, b'{"totpd":{"seed:x":"AAAA"}}', None)
    (tmp_path / "vault.bin").write_bytes(header + nonce + body)
    with pytest.raises(VaultError, match="tampered"):
        new_vault(tmp_path, key).get_password("totpd", "seed:x")


def test_a_key_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="not 32 bytes"):
        VaultKeyring(tmp_path / "vault.bin", b"short", "test key")


# concurrent and killed writers ---------------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from totpd.secrets.vault import VaultKeyring

    path, prefix, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    key = bytes.fromhex(sys.stdin.readline())
    vault = VaultKeyring(path, key, "test key")
    number = 0
    while count < 0 or number < count:
        vault.set_password("totpd", f"{prefix}{number % 50}", str(number))
        number += 1
        if number == 1:
            print("writing", flush=True)
    """
)


def start_writer(path: Path, key: bytes, prefix: str, count: int) -> subprocess.Popen[str]:
    """A separate process writing `count` entries to the vault (forever when negative)."""
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), prefix, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(key.hex() + "\n")  # the key travels on a pipe, as in totpd
    process.stdin.close()
    return process


def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    writers = [start_writer(tmp_path / "vault.bin", key, f"w{n}:", 50) for n in range(4)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
        assert writer.stdout is not None
        writer.stdout.close()
    entries = new_vault(tmp_path, key).entries()["totpd"]
    assert len(entries) == 4 * 50  # every read-modify-write saw the one before it


def test_a_writer_killed_mid_write_leaves_a_readable_vault(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    path = tmp_path / "vault.bin"
    VaultKeyring(path, key, "test key").set_password("totpd", "seed:github", SEED)
    for round_number in range(6):
        with start_writer(path, key, "n:", -1) as writer:
            assert writer.stdout is not None
            assert writer.stdout.readline() == "writing\n"
            time.sleep(0.02 + 0.03 * round_number)
            writer.send_signal(signal.SIGKILL)
        vault = VaultKeyring(path, key, "test key")
        assert vault.get_password("totpd", "seed:github") == SEED
        assert vault.entries()["totpd"]  # readable, and it holds what was written before
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".vault.bin.")]
    # Temp files of killed writes may stay; they are 0600 and never read as the vault.
    for name in leftovers:
        assert name == ".vault.bin.lock" or (tmp_path / name).stat().st_mode & 0o077 == 0


# the embedded key ------------------------------------------------------------------------
def test_embedded_key_is_created_once_with_one_warning(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="totpd.secrets.key"):
        open_store(config).set_seed("github", SEED)
        key_file = config.paths.state_dir / "vault.key"
        first_key = key_file.read_bytes()
        assert open_store(config).seed("github") == SEED
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_bytes() == first_key
    warnings = [r for r in caplog.records if "unsealed file" in r.getMessage()]
    assert len(warnings) == 1
    assert "totpd secrets init" in warnings[0].getMessage()


def test_only_the_command_that_creates_the_embedded_key_warns(tmp_path: Path) -> None:
    """A demo session runs many commands on one development key: one warning, not one each."""
    config_path = write_config(tmp_path)
    first = run_totpd(config_path, "account", "add", "github", stdin=GITHUB_SEED)
    later = [
        run_totpd(config_path, *command) for command in (["account", "list"], ["check-config"])
    ]
    assert first.stderr.count("unsealed file beside the vault") == 1, first.stderr
    assert [done.returncode for done in later] == [0, 0]
    assert [done.stderr for done in later] == ["", ""]


def test_vault_without_its_key_is_an_error_not_an_empty_vault(config: Config) -> None:
    open_store(config).set_seed("github", SEED)
    vault_file = config.paths.state_dir / "vault.bin"
    before = vault_file.read_bytes()
    (config.paths.state_dir / "vault.key").unlink()
    with pytest.raises(VaultError, match="the vault exists but its key was not found") as caught:
        open_store(config)
    assert str(vault_file) in str(caught.value)
    assert not (config.paths.state_dir / "vault.key").exists()  # no new key made up
    assert vault_file.read_bytes() == before


def test_group_readable_key_file_is_refused(config: Config) -> None:
    open_store(config).set_seed("github", SEED)
    key_file = config.paths.state_dir / "vault.key"
    key_file.chmod(0o640)
    with pytest.raises(VaultError, match="readable by others"):
        open_store(config)


def test_cli_reports_a_tampered_vault_in_one_line(config_path: Path, config: Config) -> None:
    enrol_demo(config)
    vault_file = config.paths.state_dir / "vault.bin"
    blob = bytearray(vault_file.read_bytes())
    blob[-1] ^= 1
    vault_file.write_bytes(bytes(blob))
    result = run_totpd(config_path, "account", "code", "github")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"totpd: error: {vault_file}: vault file is corrupted or was tampered with"
    )
    assert "Traceback" not in result.stderr


# the keyring library ------------------------------------------------------------------------
def keyring_cli(config_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The `keyring` command of this environment, with $TOTPD_CONFIG set."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "keyring"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TOTPD_CONFIG": str(config_path)},
        check=False,
    )


def test_keyring_finds_the_vault_through_its_entry_point(config_path: Path, config: Config) -> None:
    open_store(config).set_seed("github", GITHUB_SEED)
    listed = keyring_cli(config_path, "--list-backends")
    assert "totpd.secrets.vault.VaultKeyring" in listed.stdout
    got = keyring_cli(config_path, "get", "totpd", "seed:github")
    assert (got.returncode, got.stdout.strip()) == (0, GITHUB_SEED)
    stored = keyring_cli(config_path, "set", "totpd", "seed:gitlab", stdin=SEED + "\n")
    assert stored.returncode == 0, stored.stderr
    assert open_store(config).seed("gitlab") == SEED


def test_listing_backends_reads_no_vault_and_makes_no_key(config_path: Path) -> None:
    listed = keyring_cli(config_path, "--list-backends")
    assert "totpd.secrets.vault.VaultKeyring" in listed.stdout
    state = config_module.load(config_path).paths.state_dir
    assert not state.exists() or not any(state.iterdir())


def test_vault_backend_is_not_offered_without_a_totpd_config() -> None:
    env = {k: v for k, v in os.environ.items() if k != config_module.CONFIG_ENV}
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "keyring"), "--list-backends"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0
    assert "VaultKeyring" not in listed.stdout


# the sealed key (systemd-creds, host key) ----------------------------------------------------
@pytest.mark.systemd_creds
def test_init_seals_the_key_and_keeps_every_seed(tmp_path: Path) -> None:
    config_path = sealed_config(tmp_path)
    config = config_module.load(config_path)
    config.paths.state_dir.mkdir(mode=0o700)
    enrol_demo(config)  # first with the embedded development key
    embedded = config.paths.state_dir / "vault.key"
    assert embedded.exists()

    result = run_totpd(config_path, "secrets", "init", "--with-key=host")
    assert result.returncode == 0, result.stderr
    cred = tmp_path / "credstore" / f"{CREDENTIAL}.cred"
    assert f"LoadCredentialEncrypted={CREDENTIAL}:{cred}" in result.stdout
    assert f"sealed vault key written to {cred} (key: host)" in result.stdout
    assert "re-encrypted" in result.stdout
    assert cred.stat().st_mode & 0o777 == 0o600
    assert not embedded.exists()
    # The admin CLI, outside systemd, unseals the key through systemd-creds and reads on.
    code = run_totpd(config_path, "account", "code", "github")
    assert code.returncode == 0, code.stderr
    unsealed = subprocess.run(
        ["systemd-creds", "decrypt", f"--name={CREDENTIAL}", str(cred), "-"],
        capture_output=True,
        check=True,
    ).stdout
    assert len(unsealed) == 32
    assert (
        VaultKeyring(config.paths.state_dir / "vault.bin", unsealed).get_password(
            "totpd", "seed:github"
        )
        == GITHUB_SEED
    )


@pytest.mark.systemd_creds
def test_the_daemon_reads_the_key_from_its_credentials_directory(tmp_path: Path) -> None:
    config_path = sealed_config(tmp_path)
    assert run_totpd(config_path, "secrets", "init", "--with-key=host").returncode == 0
    assert (
        run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=SEED)
    ).returncode == 0
    # What systemd does for LoadCredentialEncrypted=: unseal into a private directory.
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    cred = tmp_path / "credstore" / f"{CREDENTIAL}.cred"
    subprocess.run(
        [
            "systemd-creds",
            "decrypt",
            f"--name={CREDENTIAL}",
            str(cred),
            str(credentials / CREDENTIAL),
        ],
        check=True,
        capture_output=True,
    )
    cred.rename(tmp_path / "elsewhere.cred")  # so only the credentials directory can help
    result = run_totpd(
        config_path, "account", "code", "github", env={"CREDENTIALS_DIRECTORY": str(credentials)}
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.systemd_creds
def test_missing_credential_is_a_clear_error(tmp_path: Path) -> None:
    config_path = sealed_config(tmp_path)
    assert run_totpd(config_path, "secrets", "init", "--with-key=host").returncode == 0
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=SEED)
    cred = tmp_path / "credstore" / f"{CREDENTIAL}.cred"
    cred.unlink()
    result = run_totpd(config_path, "account", "code", "github")
    assert result.returncode == 1
    assert "the vault exists but its key was not found" in result.stderr
    assert f"sealed key {cred}" in result.stderr
    assert "Traceback" not in result.stderr


def test_daemon_without_its_credential_names_every_place_looked_at(
    config_path: Path, config: Config, tmp_path: Path
) -> None:
    enrol_demo(config)
    (config.paths.state_dir / "vault.key").unlink()
    empty = tmp_path / "credentials"  # a unit whose LoadCredentialEncrypted= line is missing
    empty.mkdir()
    result = run_totpd(
        config_path, "account", "code", "github", env={"CREDENTIALS_DIRECTORY": str(empty)}
    )
    assert result.returncode == 1
    assert "the vault exists but its key was not found" in result.stderr
    assert f"credential '{CREDENTIAL}' in $CREDENTIALS_DIRECTORY" in result.stderr
    assert str(config.paths.state_dir / "vault.key") in result.stderr


@pytest.mark.systemd_creds
def test_tampered_credential_is_refused_and_the_vault_untouched(tmp_path: Path) -> None:
    config_path = sealed_config(tmp_path)
    assert run_totpd(config_path, "secrets", "init", "--with-key=host").returncode == 0
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=SEED)
    vault_file = tmp_path / "state" / "vault.bin"
    before = vault_file.read_bytes()
    cred = tmp_path / "credstore" / f"{CREDENTIAL}.cred"
    text = cred.read_text()
    cred.write_text(text[:40] + ("A" if text[40] != "A" else "B") + text[41:])
    result = run_totpd(config_path, "account", "add", "gmail", "--label", "Gmail", stdin=SEED)
    assert result.returncode == 1
    assert f"{cred}: cannot unseal" in result.stderr
    assert "Traceback" not in result.stderr
    assert vault_file.read_bytes() == before


@pytest.mark.systemd_creds
def test_credential_sealed_under_another_name_is_refused(tmp_path: Path) -> None:
    config_path = sealed_config(tmp_path, 'key_credential = "other-name"')
    cred = tmp_path / "credstore" / f"{CREDENTIAL}.cred"
    cred.parent.mkdir()
    subprocess.run(
        ["systemd-creds", "encrypt", "--with-key=host", f"--name={CREDENTIAL}", "-", str(cred)],
        input=secrets.token_bytes(32),
        check=True,
        capture_output=True,
    )
    result = run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=SEED)
    assert result.returncode == 1
    assert "cannot unseal" in result.stderr


@pytest.mark.systemd_creds
def test_a_different_sealed_key_is_named_the_wrong_key(tmp_path: Path) -> None:
    config_path = sealed_config(tmp_path)
    assert run_totpd(config_path, "secrets", "init", "--with-key=host").returncode == 0
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=SEED)
    cred = tmp_path / "credstore" / f"{CREDENTIAL}.cred"
    subprocess.run(
        ["systemd-creds", "encrypt", "--with-key=host", f"--name={CREDENTIAL}", "-", str(cred)],
        input=secrets.token_bytes(32),
        check=True,
        capture_output=True,
    )
    result = run_totpd(config_path, "account", "code", "github")
    assert result.returncode == 1
    assert f"the vault key from {cred} is not the key this vault was written with" in (
        result.stderr
    )


@pytest.mark.systemd_creds
def test_init_refuses_to_replace_a_sealed_key_unless_forced(tmp_path: Path) -> None:
    config_path = sealed_config(tmp_path)
    assert run_totpd(config_path, "secrets", "init", "--with-key=host").returncode == 0
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=SEED)
    cred = tmp_path / "credstore" / f"{CREDENTIAL}.cred"
    first = cred.read_bytes()
    again = run_totpd(config_path, "secrets", "init", "--with-key=host")
    assert again.returncode == 1
    assert "already there" in again.stderr
    assert cred.read_bytes() == first
    forced = run_totpd(config_path, "secrets", "init", "--with-key=host", "--force")
    assert forced.returncode == 0, forced.stderr
    assert cred.read_bytes() != first
    assert run_totpd(config_path, "account", "code", "github").returncode == 0


@pytest.mark.systemd_creds
def test_init_refuses_a_vault_it_cannot_open(tmp_path: Path) -> None:
    config_path = sealed_config(tmp_path)
    config = config_module.load(config_path)
    config.paths.state_dir.mkdir(mode=0o700)
    open_store(config).set_seed("github", SEED)
    (config.paths.state_dir / "vault.key").write_bytes(secrets.token_bytes(32))
    result = run_totpd(config_path, "secrets", "init", "--with-key=host")
    assert result.returncode == 1
    assert "not the key this vault was written with" in result.stderr
    assert not (tmp_path / "credstore").exists()


def test_init_with_an_unknown_key_kind_is_refused(tmp_path: Path) -> None:
    config_path = sealed_config(tmp_path)
    result = run_totpd(config_path, "secrets", "init", "--with-key=floppy")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
