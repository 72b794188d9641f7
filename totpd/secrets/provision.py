"""`totpd secrets init`: a fresh vault key, sealed to this host, and the unit lines to load it.

The key is sealed with `systemd-creds encrypt` (to the TPM2 chip and the host key whenever the
host can use a TPM2, to the host key otherwise: `credential.choose_key`) and checked by
unsealing it before anything is written.
An existing vault is re-encrypted under the new key, so moving from the embedded
development key to a sealed one keeps every seed; the unsealed key file is then removed.

Run as root on the service user's state directory, the command works as that user
(totpd.privileges) and is root again only to seal the key and to write it (`as_root`), into a
directory no one but root can write.
"""

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from totpd.config import Config
from totpd.errors import SecretStoreError
from totpd.files import file_version, write_atomic
from totpd.privileges import as_root
from totpd.secrets.credential import choose_key, seal, unseal_bytes
from totpd.secrets.key import CREDSTORE_DIR, embedded_key_path, sealed_key_path
from totpd.secrets.vault import KEY_BYTES, VaultKeyring, open_vault, vault_path


@dataclass(frozen=True)
class SealedKey:
    """What `init` did: where the sealed key is and how many entries were re-encrypted."""

    path: Path
    credential: str
    with_key: str  # what sealed it: host+tpm2, host, tpm2, or systemd-creds' own auto
    entries: int
    found_by_config: bool
    removed_key_file: Path | None

    def unit_lines(self) -> list[str]:
        """The lines to add to totpd.service (e.g. with `systemctl edit totpd`)."""
        return ["[Service]", f"LoadCredentialEncrypted={self.credential}:{self.path}"]


def _write_credential(path: Path, sealed: bytes) -> None:
    with as_root():
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory = path.parent.stat()
            if os.geteuid() == 0 and (
                directory.st_uid != 0 or directory.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            ):
                raise SecretStoreError(
                    f"{path}: root seals keys only into a directory no other user can write"
                    f" (like {CREDSTORE_DIR})"
                )
            write_atomic(path, sealed, mode=0o600)
        except OSError as exc:
            raise SecretStoreError(f"{path}: cannot write sealed key: {exc.strerror}") from None


def init_sealed_key(
    config: Config, output: Path | None = None, with_key: str = "auto", force: bool = False
) -> SealedKey:
    """Create a vault key, seal it to `output`, and re-encrypt any existing vault with it."""
    if config.secrets.backend != "vault":
        raise SecretStoreError(
            f"secrets.backend is {config.secrets.backend!r}: only totpd's vault has a key to seal"
        )
    name = config.secrets.key_credential
    path = output or sealed_key_path(config)
    with as_root():
        if path.exists() and not force:
            raise SecretStoreError(
                f"{path}: a sealed vault key is already there; --force replaces it (the vault"
                " is re-encrypted with the new key)"
            )
        found_by_config = path.resolve() == sealed_key_path(config).resolve()
    # Open the vault with the key it has now before touching anything: a vault that cannot
    # be read must not be re-keyed (or it would be lost).
    vault = open_vault(config) if file_version(vault_path(config)) is not None else None
    new_key = secrets.token_bytes(KEY_BYTES)
    with as_root():  # the host key (/var/lib/systemd/credential.secret) and the TPM are root's
        with_key = choose_key(with_key)
        sealed = seal(new_key, name, with_key)
        unsealed = unseal_bytes(sealed, name, f"checking the sealed key for {path}")
    if unsealed != new_key:
        raise SecretStoreError(f"{path}: the sealed key did not unseal to itself; nothing written")
    if vault is None:
        _write_credential(path, sealed)
        entries = 0
    else:
        entries = vault.rekey(new_key, lambda: _write_credential(path, sealed))
    removed = None
    embedded = embedded_key_path(config)
    if found_by_config and file_version(embedded) is not None:
        # Only once the vault opens with the sealed key: the plain key is no longer needed.
        VaultKeyring(vault_path(config), new_key, str(path)).entries()
        embedded.unlink()
        removed = embedded
    return SealedKey(path, name, with_key, entries, found_by_config, removed)
