"""The admin page's sign-in password: one Argon2id hash in a 0600 file in the state directory.

`totpd admin passwd` writes it; the daemon reads it at every sign-in, so a new password takes
effect without a restart and ends every session signed in under the old one.
"""

import asyncio
import os
import secrets
from pathlib import Path

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from totpd.config import PinConfig
from totpd.errors import AdminPasswordError, ConfigError
from totpd.files import FileVersion, file_version, write_atomic

PASSWORD_FILE = "admin-password"  # noqa: S105 - a file name
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024


class AdminPassword:
    """The admin password hash on disk: set it, check a guess against it."""

    def __init__(self, state_dir: Path, pins: PinConfig) -> None:
        self.path = state_dir / PASSWORD_FILE
        # The PIN cost settings are the one place where Argon2 is tuned for this host.
        self._hasher = argon2.PasswordHasher(
            time_cost=pins.argon2_time_cost,
            memory_cost=pins.argon2_memory_kib,
            parallelism=pins.argon2_parallelism,
            type=argon2.Type.ID,
        )
        self._dummy_hash: str | None = None
        # One check at a time: each costs `argon2_memory_kib` of memory.
        self._checks = asyncio.Semaphore(1)

    @staticmethod
    def check_policy(password: str) -> None:
        """Raise AdminPasswordError if `password` is too short, too long or not printable."""
        if len(password) < MIN_PASSWORD_CHARS:
            raise AdminPasswordError(
                f"the admin password needs at least {MIN_PASSWORD_CHARS} characters"
            )
        if len(password) > MAX_PASSWORD_CHARS:
            raise AdminPasswordError(f"the admin password has at most {MAX_PASSWORD_CHARS} chars")
        if not password.isprintable():
            raise AdminPasswordError("the admin password must be printable characters")

    def set(self, password: str) -> None:
        """Hash `password` and replace the stored hash (atomically, readable by the owner only)."""
        self.check_policy(password)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._write(self._hasher.hash(password))

    def _write(self, password_hash: str) -> None:
        write_atomic(self.path, password_hash.encode() + b"\n", mode=0o600)
        # Run as root (sudo totpd admin passwd), the file must still be the daemon's to read.
        state_dir = self.path.parent.stat()
        if os.geteuid() == 0 and state_dir.st_uid != 0:
            os.chown(self.path, state_dir.st_uid, state_dir.st_gid)

    def _stored(self) -> str | None:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot read the admin password hash") from exc
        return text or None

    def version(self) -> FileVersion | None:
        """Identifies the stored hash (inode, mtime); it changes whenever the password does."""
        return file_version(self.path)

    def is_set(self) -> bool:
        """True once `totpd admin passwd` has stored a password."""
        return self._stored() is not None

    def verify_sync(self, guess: str) -> bool:
        """True when `guess` is the password; the same Argon2 work is done when none is set."""
        stored = self._stored()
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        try:
            self._hasher.verify(stored or self._dummy_hash, guess[:MAX_PASSWORD_CHARS])
        except (VerificationError, InvalidHashError):
            return False
        if stored is None:
            return False
        if self._hasher.check_needs_rehash(stored):
            self._write(self._hasher.hash(guess))
        return True

    async def verify(self, guess: str) -> bool:
        """`verify_sync` off the event loop, one check at a time."""
        async with self._checks:
            return await asyncio.to_thread(self.verify_sync, guess)
