"""totpd's own keyring backend: an AES-256-GCM encrypted file in the state directory.

First version: the key is a file beside the vault. (Issue "Secrets" seals it with systemd-creds.)
"""

import json
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from totpd.config import Config
from totpd.errors import SecretStoreError
from totpd.files import write_atomic

VAULT_FILE = "vault.bin"
KEY_FILE = "vault.key"
NONCE_BYTES = 12


class VaultKeyring(KeyringBackend):
    """A keyring backend whose entries live in one encrypted file."""

    priority = 0.1  # type: ignore[assignment]

    def __init__(self, path: Path | None = None, key: bytes | None = None) -> None:
        super().__init__()
        if path is None or key is None:
            raise SecretStoreError("the totpd vault needs a path and a key")
        self.path = path
        self._aead = AESGCM(key)

    def _load(self) -> dict[str, str]:
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise SecretStoreError(f"{self.path}: cannot read vault: {exc.strerror}") from None
        try:
            plain = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], None)
        except (InvalidTag, ValueError):
            raise SecretStoreError(f"{self.path}: vault is corrupted or the key is wrong") from None
        entries: dict[str, str] = json.loads(plain)
        return entries

    def _save(self, entries: dict[str, str]) -> None:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(entries, sort_keys=True).encode()
        write_atomic(self.path, nonce + self._aead.encrypt(nonce, plain, None))

    def get_password(self, service: str, username: str) -> str | None:
        """Return the stored secret or None."""
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store a secret."""
        entries = self._load()
        entries[f"{service}\0{username}"] = password
        self._save(entries)

    def delete_password(self, service: str, username: str) -> None:
        """Delete a secret."""
        entries = self._load()
        if entries.pop(f"{service}\0{username}", None) is None:
            raise PasswordDeleteError(username)
        self._save(entries)


def open_vault(config: Config) -> VaultKeyring:
    """Open (creating on first use) the vault and its key file in the state directory."""
    state_dir = config.paths.state_dir
    key_path = state_dir / KEY_FILE
    if not key_path.exists():
        write_atomic(key_path, secrets.token_bytes(32))
    key = key_path.read_bytes()
    if len(key) != 32:
        raise SecretStoreError(f"{key_path}: not a 32-byte vault key")
    return VaultKeyring(state_dir / VAULT_FILE, key)
