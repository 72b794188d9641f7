"""PINs: the policy, assigned PINs, and Argon2id hashes verified with equal work whether or not
a user exists, has a duress PIN, or typed it.

The policy follows NIST SP 800-63B (5.1.1.1): a PIN the user chooses has at least
`pins.min_length` digits (8 by default), one totpd assigns at random `pins.generated_length`
(6 by default). Neither may be repeated or sequential digits. A PIN set before the policy
changed keeps working: the policy applies when a PIN is set.
"""

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from totpd.config import PinConfig
from totpd.errors import RosterError
from totpd.keypad import MAX_DIGITS


@dataclass(frozen=True)
class PinCheck:
    """The outcome of a PIN check; `new_hash` is set when the hash needs upgrading, `duress`
    when the PIN was the user's duress PIN (then `ok` is False: it never opens anything)."""

    ok: bool
    new_hash: str | None = None
    duress: bool = False


async def _nothing() -> None:
    """What a duress PIN does by default, beyond being refused."""


ARGON2_NICENESS = 10


def _lower_thread_priority() -> None:
    """Run this Argon2 thread (and the lanes libargon2 starts from it) at a lower priority, so
    the event loop gets a core at once: a PIN check may wait a little, a webhook should not.
    Linux applies niceness per thread; where it is refused (a syscall filter), nothing changes."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ARGON2_NICENESS)


def _too_easy(pin: str) -> bool:
    """Repeated or sequential digits: the first PINs anyone tries."""
    return len(set(pin)) == 1 or pin in "01234567890123456789" or pin in "98765432109876543210"


class PinHasher:
    """Hashes and verifies PINs with Argon2id, off the event loop, in a bounded thread pool."""

    def __init__(self, config: PinConfig) -> None:
        self.min_length = config.min_length
        self.generated_length = config.generated_length
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
        """Raise RosterError (naming the rule, never the PIN) if `pin`, chosen by a person, is
        not acceptable."""
        if not pin.isascii() or not pin.isdigit():
            raise RosterError("a PIN is keypad digits only (0-9)")
        if not self.min_length <= len(pin) <= MAX_DIGITS:
            raise RosterError(
                f"a PIN you choose has {self.min_length} to {MAX_DIGITS} digits (or let totpd"
                f" assign a random {self.generated_length}-digit one: --generate-pin)"
            )
        if _too_easy(pin):
            raise RosterError("that PIN is too easy to guess (repeated or sequential digits)")

    def hash(self, pin: str) -> str:
        """An Argon2id hash of a PIN a person chose that meets the policy."""
        self.check_policy(pin)
        return self._hasher.hash(pin)

    def generate(self) -> tuple[str, str]:
        """A random PIN of `generated_length` digits, from `secrets` (drawn again if it comes
        out repeated or sequential), and its hash."""
        while True:
            pin = "".join(secrets.choice("0123456789") for _ in range(self.generated_length))
            if not _too_easy(pin):
                return pin, self._hasher.hash(pin)

    def verify_sync(self, pin_hash: str | None, pin: str, rehash: bool = True) -> PinCheck:
        """Verify `pin` against `pin_hash`, or against a dummy hash when there is no user.

        With `rehash`, a match against a hash of older parameters also hashes `pin` anew.
        """
        try:
            self._hasher.verify(pin_hash or self._dummy_hash, pin)
        except (VerificationError, InvalidHashError):
            return PinCheck(ok=False)
        if pin_hash is None:
            return PinCheck(ok=False)
        if rehash and self._hasher.check_needs_rehash(pin_hash):
            return PinCheck(ok=True, new_hash=self._hasher.hash(pin))
        return PinCheck(ok=True)

    async def verify(self, pin_hash: str | None, pin: str, rehash: bool = True) -> PinCheck:
        """`verify_sync` in the Argon2 thread pool, so the event loop keeps serving."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.verify_sync, pin_hash, pin, rehash)

    async def check(
        self,
        pin_hash: str | None,
        duress_hash: str | None,
        pin: str,
        on_duress: Callable[[], Awaitable[None]] = _nothing,
    ) -> PinCheck:
        """Verify `pin` against the duress hash, then against the PIN hash (each None, or a
        user without a duress PIN: the dummy hash): two verifications on every path, so the
        time of the answer tells no PIN, no user and no refusal apart.

        `on_duress` (recording a freeze) runs while the second verification does, so it
        costs the answer no time of its own. A PIN that matches both is the duress PIN.
        """
        # Never rehashed here: hashing anew is Argon2 work a wrong PIN does not do.
        duress = await self.verify(duress_hash or None, pin, rehash=False)
        checked = asyncio.ensure_future(self.verify(pin_hash, pin))
        try:
            if duress.ok:
                await on_duress()
        finally:
            verdict = await checked
        return PinCheck(ok=False, duress=True) if duress.ok else verdict

    def close(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=True)
