"""Where the vault key comes from, first match wins.

1. `$CREDENTIALS_DIRECTORY/<secrets.key_credential>`: the daemon under systemd, whose unit
   says `LoadCredentialEncrypted=`; systemd unsealed it (with the TPM2 or the host key).
2. The sealed credential file (`secrets.sealed_key_file`, by default
   `/etc/credstore.encrypted/<secrets.key_credential>.cred`), unsealed through a pipe from
   `systemd-creds decrypt`: the admin CLI, run as root on the same host.
3. `<state_dir>/vault.key`: the embedded default for development and the quick start. It is
   created on first use, only while no vault exists, and a warning says so once.

A vault that exists but whose key is nowhere is an error naming every place looked at, never
a fresh empty vault.
"""

import functools
import logging
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from totpd.config import Config
from totpd.errors import SecretStoreError, VaultError
from totpd.secrets.credential import credential_path, unseal
from totpd.secrets.vault import KEY_BYTES, vault_path

KEY_FILE = "vault.key"
CREDSTORE_DIR = Path("/etc/credstore.encrypted")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VaultKey:
    """A vault key and a description of where it came from (for error messages)."""

    key: bytes = field(repr=False)
    source: str


def sealed_key_path(config: Config) -> Path:
    """The sealed credential file the admin CLI unseals when systemd has not done it."""
    if config.secrets.sealed_key_file:
        return Path(config.secrets.sealed_key_file)
    return CREDSTORE_DIR / f"{config.secrets.key_credential}.cred"


def embedded_key_path(config: Config) -> Path:
    """The unsealed key file used outside systemd."""
    return config.paths.state_dir / KEY_FILE


def _checked(key: bytes, source: str) -> VaultKey:
    if len(key) != KEY_BYTES:
        raise VaultError(f"{source}: not a {KEY_BYTES}-byte vault key ({len(key)} bytes)")
    return VaultKey(key, source)


def _from_credentials_directory(config: Config) -> VaultKey | None:
    path = credential_path(config.secrets.key_credential)
    if path is None:
        return None
    try:
        return _checked(path.read_bytes(), f"credential {path}")
    except OSError as exc:
        raise VaultError(f"{path}: cannot read credential: {exc.strerror}") from None


@functools.cache
def _warn_embedded(path: Path) -> None:
    log.warning(
        "vault key %s is an unsealed file beside the vault: fine for development, not for"
        " production; run `totpd secrets init` to seal it to this host (TPM2 when present)",
        path,
    )


def _create_embedded(path: Path) -> None:
    """Create the key file unless another process just did (link() never overwrites)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(secrets.token_bytes(KEY_BYTES))
            tmp.flush()
            os.fsync(tmp.fileno())
        os.link(tmp_name, path)
    except FileExistsError:
        pass
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _from_embedded_file(config: Config, looked_at: list[str]) -> VaultKey:
    path = embedded_key_path(config)
    if not path.exists():
        vault = vault_path(config)
        if vault.exists():
            raise VaultError(
                f"{vault}: the vault exists but its key was not found (looked at:"
                f" {'; '.join([*looked_at, str(path)])})"
            )
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_embedded(path)
        except OSError as exc:
            raise VaultError(f"{path}: cannot create vault key: {exc.strerror}") from None
    try:
        mode = path.stat().st_mode
        key = path.read_bytes()
    except OSError as exc:
        raise VaultError(f"{path}: cannot read vault key: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise VaultError(f"{path}: vault key is readable by others; chmod 600 it")
    _warn_embedded(path)
    return _checked(key, str(path))


def locate_key(config: Config) -> VaultKey:
    """The vault key for `config`, from the first source that has one (see module doc)."""
    from_systemd = _from_credentials_directory(config)
    if from_systemd is not None:
        return from_systemd
    looked_at = []
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        looked_at.append(f"credential {config.secrets.key_credential!r} in $CREDENTIALS_DIRECTORY")
    sealed = sealed_key_path(config)
    if sealed.exists():
        try:
            return _checked(unseal(sealed, config.secrets.key_credential), str(sealed))
        except SecretStoreError as exc:
            raise VaultError(str(exc)) from None
    looked_at.append(f"sealed key {sealed}")
    return _from_embedded_file(config, looked_at)
