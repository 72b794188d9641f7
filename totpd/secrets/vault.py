"""totpd's own keyring backend: one AES-256-GCM encrypted file that only its key opens.

File format, version 1 (every byte is authenticated; the header is the AEAD's associated data):

    magic b"TOTPDVLT" | version 0x01 | key id (8 bytes) | nonce (12 bytes) | ciphertext + tag

The key id is an HMAC of a fixed label under the key, so a wrong key is told apart from a
tampered file without trying to decrypt. The plaintext is JSON: {service: {username: secret}}.

Every read-modify-write holds an exclusive `flock` on a lock file beside the vault, and every
read a shared one, so the daemon and the admin CLI can both write. Writes replace the file
atomically (temp file, fsync, rename, fsync of the directory): a crash leaves the old vault or
the new one, never a torn one.
"""

import fcntl
import hashlib
import hmac
import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jaraco.classes.properties import classproperty
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from totpd.config import CONFIG_ENV, Config
from totpd.errors import VaultError
from totpd.files import write_atomic

VAULT_FILE = "vault.bin"
MAGIC = b"TOTPDVLT"
VERSION = 1
KEY_BYTES = 32
KEY_ID_BYTES = 8
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + 1 + KEY_ID_BYTES
MAX_VAULT_BYTES = 16 << 20

Entries = dict[str, dict[str, str]]


def key_id(key: bytes) -> bytes:
    """A short, non-secret fingerprint of a vault key, stored in the vault's header."""
    return hmac.new(key, b"totpd vault key id v1", hashlib.sha256).digest()[:KEY_ID_BYTES]


def seal_entries(entries: Entries, key: bytes) -> bytes:
    """Encrypt `entries` into the bytes of a version-1 vault file."""
    header = MAGIC + bytes([VERSION]) + key_id(key)
    nonce = os.urandom(NONCE_BYTES)
    plain = json.dumps(entries, sort_keys=True, separators=(",", ":")).encode()
    return header + nonce + AESGCM(key).encrypt(nonce, plain, header)


def open_entries(blob: bytes, key: bytes, path: Path, key_source: str) -> Entries:
    """Decrypt and check the bytes of a vault file; VaultError naming `path` on any fault."""
    if len(blob) < HEADER_BYTES + NONCE_BYTES + TAG_BYTES:
        raise VaultError(f"{path}: vault file is truncated ({len(blob)} bytes)")
    if not blob.startswith(MAGIC):
        raise VaultError(f"{path}: not a totpd vault file (bad magic)")
    version = blob[len(MAGIC)]
    if version != VERSION:
        raise VaultError(
            f"{path}: vault format version {version} is not supported (this totpd reads {VERSION})"
        )
    header = blob[:HEADER_BYTES]
    if not hmac.compare_digest(header[len(MAGIC) + 1 :], key_id(key)):
        raise VaultError(
            f"{path}: the vault key from {key_source} is not the key this vault was written with"
        )
    nonce = blob[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
    try:
        plain = AESGCM(key).decrypt(nonce, blob[HEADER_BYTES + NONCE_BYTES :], header)
    except InvalidTag:
        raise VaultError(f"{path}: vault file is corrupted or was tampered with") from None
    try:
        entries = json.loads(plain)
        valid = isinstance(entries, dict) and all(
            isinstance(by_user, dict)
            and all(isinstance(u, str) and isinstance(s, str) for u, s in by_user.items())
            for by_user in entries.values()
        )
    except ValueError:
        valid = False
    if not valid:
        raise VaultError(f"{path}: vault content is not in the expected shape")
    result: Entries = entries
    return result


class VaultKeyring(KeyringBackend):
    """A keyring backend whose entries live in one encrypted file.

    totpd builds it with an explicit path and key. Built with no arguments (by the `keyring`
    library, e.g. `keyring -b totpd.secrets.vault.VaultKeyring get totpd seed:NAME`), it opens
    the vault of the config file named by $TOTPD_CONFIG.
    """

    @classproperty
    def priority(cls) -> float:
        """Viable only where a totpd config is named; below any desktop keyring."""
        if not os.environ.get(CONFIG_ENV):
            raise RuntimeError(f"the totpd vault needs ${CONFIG_ENV}")
        return 0.5

    path: Path
    key_source: str
    _key: bytes
    _lock_path: Path

    def __init__(
        self, path: Path | None = None, key: bytes | None = None, key_source: str = ""
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring is untyped
        # The keyring library builds every viable backend just to list them: in the
        # no-argument form, nothing is read (nor a key unsealed) before the first use.
        self._from_config = path is None and key is None
        if not self._from_config:
            if path is None or key is None:
                raise VaultError("the totpd vault needs both a path and a key")
            self._use(path, key, key_source or "the given key")

    def _use(self, path: Path, key: bytes, key_source: str) -> None:
        if len(key) != KEY_BYTES:
            raise VaultError(f"{path}: the vault key from {key_source} is not {KEY_BYTES} bytes")
        self.path, self._key, self.key_source = path, key, key_source
        self._lock_path = path.with_name(f".{path.name}.lock")

    def _open(self) -> None:
        if self._from_config:
            from totpd.config import load
            from totpd.secrets.key import locate_key

            config = load(None)
            vault_key = locate_key(config)
            self._use(vault_path(config), vault_key.key, vault_key.source)
            self._from_config = False

    def __repr__(self) -> str:
        if self._from_config:
            return f"VaultKeyring(${CONFIG_ENV})"
        return f"VaultKeyring({str(self.path)!r})"

    @contextmanager
    def _locked(self, operation: int) -> Iterator[None]:
        self._open()
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._lock_path, flags, 0o600)
        except OSError as exc:
            raise VaultError(f"{self._lock_path}: cannot open lock file: {exc.strerror}") from None
        try:
            _give_to_directory_owner(fd, self._lock_path.parent)
            fcntl.flock(fd, operation)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self) -> Entries:
        try:
            with self.path.open("rb") as vault:
                blob = vault.read(MAX_VAULT_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise VaultError(f"{self.path}: cannot read vault: {exc.strerror}") from None
        if len(blob) > MAX_VAULT_BYTES:
            raise VaultError(f"{self.path}: vault file is larger than {MAX_VAULT_BYTES} bytes")
        return open_entries(blob, self._key, self.path, self.key_source)

    def _write(self, entries: Entries) -> None:
        try:
            write_atomic(self.path, seal_entries(entries, self._key), mode=0o600)
            # An admin running as root must leave the vault readable by the service user,
            # who owns the state directory; readers wait on the lock, so none sees the gap.
            owner = _directory_owner(self.path.parent)
            if owner is not None:
                os.chown(self.path, *owner, follow_symlinks=False)
        except OSError as exc:
            raise VaultError(f"{self.path}: cannot write vault: {exc.strerror}") from None

    def entries(self) -> Entries:
        """Every entry in the vault (for backups)."""
        with self._locked(fcntl.LOCK_SH):
            return self._read()

    def exists(self) -> bool:
        """True when the vault file exists (an absent vault reads as empty)."""
        self._open()
        return self.path.exists()

    def replace_all(self, entries: Entries) -> None:
        """Replace the whole content of the vault (restore, re-key)."""
        with self._locked(fcntl.LOCK_EX):
            self._write(entries)

    def rekey(self, new_key: bytes, save_key: Callable[[], None]) -> int:
        """Re-encrypt the vault under `new_key`; `save_key` stores that key first.

        Both happen under the exclusive lock, so no writer slips in between with the old key.
        Returns how many entries were re-encrypted.
        """
        with self._locked(fcntl.LOCK_EX):
            entries = self._read() if self.path.exists() else None
            if len(new_key) != KEY_BYTES:
                raise VaultError(f"{self.path}: a new vault key must be {KEY_BYTES} bytes")
            save_key()
            self._key, self.key_source = new_key, "the new key"
            if entries is None:
                return 0
            self._write(entries)
            return sum(len(by_user) for by_user in entries.values())

    def get_password(self, service: str, username: str) -> str | None:
        """Return the stored secret, or None when there is none."""
        with self._locked(fcntl.LOCK_SH):
            return self._read().get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store (or replace) a secret."""
        with self._locked(fcntl.LOCK_EX):
            entries = self._read()
            entries.setdefault(service, {})[username] = password
            self._write(entries)

    def delete_password(self, service: str, username: str) -> None:
        """Delete a secret; PasswordDeleteError when there is none."""
        with self._locked(fcntl.LOCK_EX):
            entries = self._read()
            if entries.get(service, {}).pop(username, None) is None:
                raise PasswordDeleteError(f"no entry {username!r} for service {service!r}")
            if not entries[service]:
                del entries[service]
            self._write(entries)


def _directory_owner(directory: Path) -> tuple[int, int] | None:
    """The directory's (uid, gid) when running as root in someone else's directory, else None."""
    if os.geteuid() != 0:
        return None
    st = directory.stat()
    return None if st.st_uid == 0 else (st.st_uid, st.st_gid)


def _give_to_directory_owner(fd: int, directory: Path) -> None:
    owner = _directory_owner(directory)
    if owner is not None and stat.S_ISREG(os.fstat(fd).st_mode):
        os.fchown(fd, *owner)


def vault_path(config: Config) -> Path:
    """Where the vault of `config` lives."""
    return config.paths.state_dir / VAULT_FILE


def open_vault(config: Config) -> VaultKeyring:
    """Open the vault of `config` with the key found for it (see totpd.secrets.key)."""
    from totpd.secrets.key import locate_key

    vault_key = locate_key(config)
    return VaultKeyring(vault_path(config), vault_key.key, vault_key.source)
