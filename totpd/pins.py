"""PINs: the policy, and Argon2id hashes verified with equal work whether or not a user exists."""

import asyncio
import contextlib
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from totpd.config import PinConfig
from totpd.errors import RosterError
from totpd.keypad import MAX_DIGITS


@dataclass(frozen=True)
class PinCheck:
    """The outcome of one Argon2 verification; `new_hash` is set when the hash needs upgrading."""

    ok: bool
    new_hash: str | None = None


ARGON2_NICENESS = 10


def _lower_thread_priority() -> None:
    """Run this Argon2 thread (and the lanes libargon2 starts from it) at a lower priority, so
    the event loop gets a core at once: a PIN check may wait a little, a webhook should not.
    Linux applies niceness per thread; where it is refused (a syscall filter), nothing changes."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ARGON2_NICENESS)


class PinHasher:
    """Hashes and verifies PINs with Argon2id, off the event loop, in a bounded thread pool."""

    def __init__(self, config: PinConfig) -> None:
        self.min_length = config.min_length
        self._hasher = argon2.PasswordHasher(
            time_cost=config.argon2_time_cost,
            memory_cost=config.argon2_memory_kib,
            parallelism=config.argon2_parallelism,
            type=argon2.Type.ID,
        )
        # Verified when the user does not exist, so that case costs the same as a real one.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        self._pool = ThreadPoolExecutor(
            config.max_concurrent_checks,
            thread_name_prefix="argon2",
            initializer=_lower_thread_priority,
        )

    def check_policy(self, pin: str) -> None:
        """Raise RosterError (naming the rule, never the PIN) if `pin` is not acceptable."""
        if not pin.isascii() or not pin.isdigit():
            raise RosterError("a PIN is keypad digits only (0-9)")
        if not self.min_length <= len(pin) <= MAX_DIGITS:
            raise RosterError(f"a PIN has {self.min_length} to {MAX_DIGITS} digits")
        if len(set(pin)) == 1 or pin in "01234567890123456789" or pin in "98765432109876543210":
            raise RosterError("that PIN is too easy to guess (repeated or sequential digits)")

    def hash(self, pin: str) -> str:
        """An Argon2id hash of a PIN that meets the policy."""
        self.check_policy(pin)
        return self._hasher.hash(pin)

    def verify_sync(self, pin_hash: str | None, pin: str) -> PinCheck:
        """Verify `pin` against `pin_hash`, or against a dummy hash when there is no user."""
        try:
            self._hasher.verify(pin_hash or self._dummy_hash, pin)
        except (VerificationError, InvalidHashError):
            return PinCheck(ok=False)
        if pin_hash is None:
            return PinCheck(ok=False)
        if self._hasher.check_needs_rehash(pin_hash):
            return PinCheck(ok=True, new_hash=self._hasher.hash(pin))
        return PinCheck(ok=True)

    async def verify(self, pin_hash: str | None, pin: str) -> PinCheck:
        """`verify_sync` in the Argon2 thread pool, so the event loop keeps serving."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.verify_sync, pin_hash, pin)

    def close(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=True)
