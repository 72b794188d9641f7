"""`totpd secrets backup` / `restore`: seeds and the roster in one passphrase-encrypted file.

A sealed vault key is bound to its host (TPM2 or host key), so the vault file alone cannot be
restored elsewhere: this backup can, on any host, with the passphrase.

File format, version 1 (the header is the AEAD's associated data, so every byte of it is
authenticated):

    magic b"TOTPDBAK" | version 0x01 | Argon2id time cost (u32) | memory KiB (u32) |
    parallelism (u8) | salt (16 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext + tag

The plaintext is JSON: {"secrets": {entry: value}, "directory": <the roster file's document>}.
"""

import json
import os
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from totpd import roster as roster_module
from totpd.errors import EnrolError, RosterError, SecretStoreError
from totpd.files import write_atomic
from totpd.otp import normalize_base32
from totpd.roster import Roster, RosterFile
from totpd.secrets import SIGNATURE_SECRET_NAME, SecretStore, seed_entry

MAGIC = b"TOTPDBAK"
VERSION = 1
_PARAMS = struct.Struct(">BIIB")  # version, time cost, memory KiB, parallelism
SALT_BYTES = 16
NONCE_BYTES = 12
HEADER_BYTES = len(MAGIC) + _PARAMS.size + SALT_BYTES
MIN_PASSPHRASE_CHARS = 10
MAX_BACKUP_BYTES = 16 << 20


@dataclass(frozen=True)
class Argon2Cost:
    """Argon2id cost: RFC 9106's second recommended option by default (64 MiB, t=3)."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4

    def check(self, path: Path) -> None:
        """Refuse costs no totpd writes, so a crafted file cannot make restore eat the host."""
        if not (
            1 <= self.time_cost <= 20
            and 8192 <= self.memory_kib <= 1 << 20
            and 1 <= self.parallelism <= 16
        ):
            raise SecretStoreError(f"{path}: backup asks for an unreasonable key-derivation cost")


@dataclass(frozen=True)
class Backup:
    """What a backup holds: secret-store entries and the roster document."""

    secrets: dict[str, str] = field(repr=False)
    roster: dict[str, Any]
    created: str = ""


def _key(passphrase: str, salt: bytes, cost: Argon2Cost) -> bytes:
    return hash_secret_raw(
        passphrase.encode(),
        salt,
        time_cost=cost.time_cost,
        memory_cost=cost.memory_kib,
        parallelism=cost.parallelism,
        hash_len=32,
        type=Type.ID,
    )


def seal_backup(backup: Backup, passphrase: str, cost: Argon2Cost = Argon2Cost()) -> bytes:
    """Encrypt `backup` with a key derived from `passphrase`."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise SecretStoreError(
            f"the backup passphrase must be at least {MIN_PASSPHRASE_CHARS} characters"
        )
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    header = MAGIC + _PARAMS.pack(VERSION, cost.time_cost, cost.memory_kib, cost.parallelism) + salt
    plain = json.dumps(
        {"created": backup.created, "secrets": backup.secrets, "directory": backup.roster}
    ).encode()
    return header + nonce + AESGCM(_key(passphrase, salt, cost)).encrypt(nonce, plain, header)


def open_backup(blob: bytes, passphrase: str, path: Path) -> Backup:
    """Decrypt and check a backup; SecretStoreError naming `path` on any fault."""
    if len(blob) < HEADER_BYTES + NONCE_BYTES + 16:
        raise SecretStoreError(f"{path}: backup file is truncated")
    if not blob.startswith(MAGIC):
        raise SecretStoreError(f"{path}: not a totpd backup file")
    version, time_cost, memory_kib, parallelism = _PARAMS.unpack_from(blob, len(MAGIC))
    if version != VERSION:
        raise SecretStoreError(f"{path}: backup format version {version} is not supported")
    cost = Argon2Cost(time_cost, memory_kib, parallelism)
    cost.check(path)
    header = blob[:HEADER_BYTES]
    salt = header[-SALT_BYTES:]
    nonce = blob[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
    try:
        plain = AESGCM(_key(passphrase, salt, cost)).decrypt(
            nonce, blob[HEADER_BYTES + NONCE_BYTES :], header
        )
    except InvalidTag:
        raise SecretStoreError(
            f"{path}: wrong passphrase, or the backup is damaged or was tampered with"
        ) from None
    try:
        document = json.loads(plain)
        secrets = document["secrets"]
        roster = document["directory"]
        ok = (
            isinstance(secrets, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in secrets.items())
            and isinstance(roster, dict)
        )
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise SecretStoreError(f"{path}: backup content is not in the expected shape")
    return Backup(secrets, roster, str(document.get("created", "")))


def collect(store: SecretStore, roster: Roster) -> tuple[Backup, list[str]]:
    """Everything to back up, and the accounts whose seed is missing from the store."""
    secrets: dict[str, str] = {}
    missing = []
    for name in roster.accounts:
        seed = store.stored(seed_entry(name))
        if seed is None:
            missing.append(name)
        else:
            secrets[seed_entry(name)] = seed
    signature = store.stored(SIGNATURE_SECRET_NAME)
    if signature is not None:
        secrets[SIGNATURE_SECRET_NAME] = signature
    # The roster's own encoding, so a restore reads exactly what the roster file holds.
    document = json.loads(roster_module.encode(roster))
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return Backup(secrets, document, created), missing


def write_backup(path: Path, blob: bytes, force: bool = False) -> None:
    """Write the backup file (0600, atomically); refuse to overwrite one unless `force`."""
    if path.exists() and not force:
        raise SecretStoreError(f"{path}: already exists (--force overwrites it)")
    try:
        write_atomic(path, blob, mode=0o600)
    except OSError as exc:
        raise SecretStoreError(f"{path}: cannot write backup: {exc.strerror}") from None


def read_backup(path: Path, passphrase: str) -> Backup:
    """Read and decrypt the backup file at `path`."""
    try:
        with path.open("rb") as file:
            blob = file.read(MAX_BACKUP_BYTES + 1)
    except OSError as exc:
        raise SecretStoreError(f"{path}: cannot read backup: {exc.strerror}") from None
    if len(blob) > MAX_BACKUP_BYTES:
        raise SecretStoreError(f"{path}: too large to be a totpd backup")
    return open_backup(blob, passphrase, path)


def restore(
    backup: Backup, store: SecretStore, roster_file: RosterFile, path: Path, force: bool
) -> Roster:
    """Put a backup's seeds into the store and its roster in place; checks come first.

    Refuses to replace a roster that has accounts or users unless `force`.
    """
    try:
        restored = roster_module.decode(json.dumps(backup.roster).encode(), path)
    except RosterError as exc:
        raise SecretStoreError(f"{path}: the backed-up directory is not valid ({exc})") from None
    allowed = {seed_entry(name) for name in restored.accounts} | {SIGNATURE_SECRET_NAME}
    unknown = sorted(set(backup.secrets) - allowed)
    if unknown:
        raise SecretStoreError(f"{path}: backup holds unexpected entries: {', '.join(unknown)}")
    for name in restored.accounts:
        if seed_entry(name) not in backup.secrets:
            raise SecretStoreError(f"{path}: account {name!r} has no seed in the backup")
        try:
            normalize_base32(backup.secrets[seed_entry(name)])
        except EnrolError:
            raise SecretStoreError(f"{path}: the seed of {name!r} is not valid base32") from None

    def replace_roster(current: Roster) -> Roster:
        if (current.accounts or current.users) and not force:
            raise SecretStoreError(
                f"{roster_file.path}: already has accounts or users; restore --force replaces them"
            )
        return restored

    replace_roster(roster_file.current())  # fail before writing any seed
    for entry, value in backup.secrets.items():
        store.put(entry, value)
    return roster_file.update(replace_roster)
