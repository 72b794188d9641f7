"""Brute-force bounds: sliding windows over PIN attempts per caller, per user, and global.

Caller ID can be spoofed and users can be rotated, so the global layer (every attempt from
anywhere) is what bounds an attacker: at most `global` PINs are checked per its window, however
many numbers call, however often the daemon restarts, however many replicas share the load.

An attempt is counted *before* its PIN is checked (`admit`), in every layer, with the atomic
hit of `limits`' moving window: concurrent calls cannot slip in between a check and a count, a
crash during Argon2 leaves the attempt counted, and when the storage cannot record it no PIN
is checked at all (LockoutUnavailable). A correct PIN gives its own attempt back (`give_back`)
and nothing else: it never clears earlier failures, so it does not reset the global breaker.

This module is the policy alone. The windows sit behind one seam, totpd.state.WindowStore:
totpd.state.journal (embedded, persisted in the state directory) or totpd.state.redis (shared
by replicas).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import limits
from limits.aio.strategies import MovingWindowRateLimiter

from totpd.config import LockoutConfig
from totpd.errors import LockoutUnavailable
from totpd.state import WindowStore

WITHHELD = "(withheld)"
UNKNOWN_USER = "(unknown)"
EVERYONE = "all"
REPORT_EVERY_S = 1.0

log = logging.getLogger("totpd.lockout")


class Layer(StrEnum):
    """One lockout layer; also its metric label."""

    GLOBAL = "global"
    CALLER = "caller"
    USER = "user"


@dataclass(frozen=True)
class CountedAttempt:
    """One attempt counted in one layer, between two instants (to give it back by)."""

    layer: Layer
    key: str
    since_s: float
    until_s: float


@dataclass(frozen=True)
class Admission:
    """The outcome of `admit`: the layer that refused the attempt, or where it was counted."""

    refused_by: Layer | None
    counted: tuple[CountedAttempt, ...] = ()


@dataclass(frozen=True)
class LockState:
    """Attempts on record for one key of one layer.

    `until_s` is when the window has room again: the end of the lockout when `locked`,
    otherwise when the oldest attempt stops counting.
    """

    layer: Layer
    key: str
    failures: int
    limit: int
    until_s: float

    @property
    def locked(self) -> bool:
        """True while this key may not try another PIN."""
        return self.failures >= self.limit

    def describe(self) -> str:
        """One line for the admin, e.g. `caller 447700900001: 3/3 failures, locked until ...`."""
        until = datetime.fromtimestamp(self.until_s).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        state = f"locked until {until}" if self.locked else f"open (oldest expires {until})"
        return f"{self.layer} {self.key}: {self.failures}/{self.limit} failures, {state}"


def caller_key(caller: str) -> str:
    """The caller layer's key: the number without `+`; every withheld caller shares one."""
    number = caller.strip().removeprefix("+")
    return number if number.isdigit() else WITHHELD


def user_key(user: str) -> str:
    """The user layer's key: the user name; every unknown user number shares one."""
    return user or UNKNOWN_USER


def global_window(config: LockoutConfig) -> tuple[str, int]:
    """The global layer's storage key and window (s): where the journal counts a damaged record."""
    item = limits.parse(config.global_)
    return item.key_for(Layer.GLOBAL, EVERYONE), item.get_expiry()


def _unavailable(exc: Exception) -> LockoutUnavailable:
    return LockoutUnavailable(f"lockout storage: {type(exc).__name__}")


class Lockout:
    """The three layers over one window store.

    `scope` keeps another kind of guess (the admin page's passwords) in windows of its own on
    the same store: its keys are "scope:key", so it never spends the callers' budget.
    """

    def __init__(self, config: LockoutConfig, store: WindowStore, scope: str = "") -> None:
        self.store = store
        self.scope = scope
        self._limiter = MovingWindowRateLimiter(store.storage)
        self.limits = {
            Layer.GLOBAL: limits.parse(config.global_),
            Layer.CALLER: limits.parse(config.per_caller),
            Layer.USER: limits.parse(config.per_user),
        }
        self._reported_s = float("-inf")

    def _rules(self, caller: str, user: str) -> list[tuple[Layer, str]]:
        rules = [
            (Layer.GLOBAL, EVERYONE),
            (Layer.CALLER, caller_key(caller)),
            (Layer.USER, user_key(user)),
        ]
        return [(layer, self._scoped(key)) for layer, key in rules]

    def _scoped(self, key: str) -> str:
        return f"{self.scope}:{key}" if self.scope else key

    def in_scope(self, key: str) -> bool:
        """True for this instance's own keys (an unscoped one's never hold a colon)."""
        return key.startswith(f"{self.scope}:") if self.scope else ":" not in key

    async def admit(self, caller: str, user: str) -> Admission:
        """Count one PIN attempt in every layer before it is checked, or name who refuses it.

        Raises LockoutUnavailable when the attempt cannot be recorded: then no PIN is checked.
        """
        rules = self._rules(caller, user)
        counted: list[CountedAttempt] = []
        try:
            for layer, key in rules:  # reads first: a flood while locked out writes nothing
                if not await self._limiter.test(self.limits[layer], layer, key):
                    return Admission(layer)
            for layer, key in rules:
                since_s = time.time()
                if not await self._limiter.hit(self.limits[layer], layer, key):
                    # Another attempt took the last place first. No PIN is checked, so the
                    # places this one took in the other layers go back (if that fails, they
                    # stay counted: an error on the side of the lockout).
                    await self.give_back(Admission(None, tuple(counted)))
                    return Admission(layer)
                counted.append(CountedAttempt(layer, key, since_s, time.time()))
        except Exception as exc:  # any storage failure: fail closed
            raise _unavailable(exc) from None
        return Admission(None, tuple(counted))

    async def give_back(self, admission: Admission) -> None:
        """The PIN was right: give this attempt back (earlier failures stay counted).

        Never raises: an attempt that cannot be given back stays counted, and is logged.
        """
        for attempt in admission.counted:
            key = self.limits[attempt.layer].key_for(attempt.layer, attempt.key)
            try:
                await self.store.release(key, attempt.since_s, attempt.until_s)
            except Exception as exc:  # the attempt stays counted: safe, and logged
                log.error("could not give back a correct PIN's attempt (%s)", type(exc).__name__)
                return

    async def record_failure(self, admission: Admission) -> list[LockState]:
        """The PIN was wrong (already counted): log and return the layers it locked."""
        tripped = []
        for attempt in admission.counted:
            item = self.limits[attempt.layer]
            try:
                stats = await self._limiter.get_window_stats(item, attempt.layer, attempt.key)
            except Exception as exc:
                log.error("lockout storage: %s", type(exc).__name__)
                continue
            if stats.remaining > 0:
                continue
            layer, key = attempt.layer, attempt.key
            state = LockState(layer, key, item.amount, item.amount, stats.reset_time)
            tripped.append(state)
            log.warning(
                "lockout: %s",
                state.describe(),
                extra={
                    "fields": {
                        "LAYER": layer.value,
                        "LOCKED_KEY": key,
                        "LOCKED_UNTIL": f"{state.until_s:.0f}",
                        "OUTCOME": "lockout",
                    }
                },
            )
        return tripped

    def _parse(self, storage_key: str) -> tuple[Layer, str] | None:
        """(layer, key) of a storage key made with the current limits; None for any other."""
        parts = storage_key.split("/")
        if len(parts) < 6 or parts[1] not in Layer.__members__.values():
            return None
        layer, key = Layer(parts[1]), "/".join(parts[2:-3])
        return (layer, key) if self.limits[layer].key_for(layer, key) == storage_key else None

    async def status(self) -> list[LockState]:
        """Every key with failures on record, locked or not, global first."""
        states = []
        try:
            for storage_key in await self.store.keys():
                parsed = self._parse(storage_key)
                if parsed is None:
                    continue
                layer, key = parsed
                item = self.limits[layer]
                stats = await self._limiter.get_window_stats(item, layer, key)
                failures = item.amount - stats.remaining
                if failures > 0:
                    states.append(LockState(layer, key, failures, item.amount, stats.reset_time))
        except Exception as exc:
            raise _unavailable(exc) from None
        order = list(Layer)
        return sorted(states, key=lambda s: (order.index(s.layer), s.key))

    async def unlock(self, caller: str | None = None, user: str | None = None) -> list[LockState]:
        """Clear one caller's and/or one user's failures, or (neither given) every layer's.

        Returns what was on record before.
        """
        before = await self.status()
        targets = []
        if caller is not None:
            targets.append((Layer.CALLER, caller_key(caller)))
        if user is not None:
            targets.append((Layer.USER, user_key(user)))
        try:
            if not targets:
                await self.store.storage.reset()
                return before
            for layer, key in targets:
                await self._limiter.clear(self.limits[layer], layer, key)
        except Exception as exc:
            raise _unavailable(exc) from None
        return [s for s in before if (s.layer, s.key) in targets]

    async def report(self, set_count: Callable[[Layer, int], None], force: bool = False) -> None:
        """Publish how many keys each layer holds locked (at most once a second, unless forced)."""
        now_s = time.monotonic()
        if not force and now_s - self._reported_s < REPORT_EVERY_S:
            return
        self._reported_s = now_s
        try:
            states = await self.status()
        except LockoutUnavailable:
            return
        for layer in Layer:
            locked = (s for s in states if s.layer is layer and s.locked and self.in_scope(s.key))
            set_count(layer, sum(1 for _ in locked))

    async def close(self) -> None:
        """Release the storage's connections."""
        await self.store.close()
