"""Brute-force bounds: sliding windows over PIN attempts per caller, per user, and global,
for two classes of caller.

Before any PIN is checked, an attempt is classified (`lockout_windows.classify`): LISTED when
the user has a caller allowlist and the call comes from a number on it, UNLISTED otherwise
(withheld and unknown numbers, users without an allowlist, keypad numbers nobody has). Each
class has its own global window and its own window per user; the caller window stays per number.
So callers from numbers on no allowlist, however many and however often, never spend what a
listed caller needs, and the PINs that reach a real hash are bounded per class: at most `global`
unlisted and `global_listed` listed ones per window, however many numbers call, however often
the daemon restarts, however many replicas share the load. Caller ID can be spoofed: a spoofed
listed number reaches the listed windows, which is why they are bounded too.

An attempt is counted *before* its PIN is checked (`admit`), in every layer, with the atomic
hit of `limits`' moving window: concurrent calls cannot slip in between a check and a count, a
crash during Argon2 leaves the attempt counted, and when the storage cannot record it no PIN
is checked at all (LockoutUnavailable). A correct PIN gives its own attempt back (`give_back`)
and nothing else: it never clears earlier failures, so it does not reset a global window.

A user's duress PIN may also freeze that user (`freeze`): a window of its own, never counted
into, tested with the others before any PIN is checked, so every PIN of that user, the right
one too, is refused as a locked-out one is, until an admin clears it (`unlock(user=...)`).

This module is the policy alone. The windows sit behind one seam, totpd.state.WindowStore:
totpd.state.journal (embedded, persisted in the state directory) or totpd.state.redis (shared
by replicas). The unlisted windows keep the storage keys every window had before there were
two classes, so an upgrade forgets no failure.
"""

import logging
import time
from collections.abc import Callable

import limits
from limits.aio.strategies import MovingWindowRateLimiter

from totpd.config import LockoutConfig
from totpd.errors import LockoutUnavailable
from totpd.lockout_windows import (
    Admission,
    CallerClass,
    CountedAttempt,
    Layer,
    LockState,
    Window,
    caller_key,
    named_caller_key,
    user_key,
)
from totpd.state import WindowStore

# A freeze ends when an admin unlocks it; the window has to have a length, so: a long one.
FREEZE_LIMIT = "1 per 100 years"
REPORT_EVERY_S = 1.0
COST_WEIGHT = 0.2  # of the newest sample in the running mean of what counting costs

log = logging.getLogger("totpd.lockout")


def global_window(config: LockoutConfig) -> tuple[str, int]:
    """The unlisted global window's storage key and length (s): where the journal counts a
    damaged record (towards a lockout of the class an attacker reaches without spoofing)."""
    item = limits.parse(config.global_)
    return item.key_for(*Window(Layer.GLOBAL, "", CallerClass.UNLISTED).identifiers()), (
        item.get_expiry()
    )


def _unavailable(exc: Exception) -> LockoutUnavailable:
    return LockoutUnavailable(f"lockout storage: {type(exc).__name__}")


class Lockout:
    """The three layers, for both classes, over one window store.

    `scope` keeps another kind of guess (the admin page's passwords) in windows of its own on
    the same store: its keys are "scope:key", so it never spends the callers' budget.
    """

    def __init__(self, config: LockoutConfig, store: WindowStore, scope: str = "") -> None:
        self.store = store
        self.scope = scope
        self._limiter = MovingWindowRateLimiter(store.storage)
        self._global = {
            CallerClass.LISTED: limits.parse(config.global_listed),
            CallerClass.UNLISTED: limits.parse(config.global_),
        }
        self._per_caller = limits.parse(config.per_caller)
        self._per_user = limits.parse(config.per_user)
        self._freeze = limits.parse(FREEZE_LIMIT)
        self._reported_s = float("-inf")
        # What counting and recording a wrong PIN costs the storage, lately (a running mean):
        # a refusal, which writes nothing, is padded to it so that it cannot be heard.
        self.counting_cost_s = 0.0
        self._costs_noted = 0

    def limit(self, window: Window) -> limits.RateLimitItem:
        """The limit a window is counted against."""
        if window.layer is Layer.GLOBAL:
            return self._global[window.caller_class or CallerClass.UNLISTED]
        if window.layer is Layer.FROZEN:
            return self._freeze
        return self._per_caller if window.layer is Layer.CALLER else self._per_user

    def storage_key(self, window: Window) -> str:
        """Where `window` is kept (what `status` reports as `storage_key`)."""
        return self.limit(window).key_for(*window.identifiers())

    def _windows(self, caller: str, user: str, caller_class: CallerClass) -> list[Window]:
        return [
            Window(Layer.GLOBAL, caller_class, caller_class, self.scope),
            Window(Layer.CALLER, caller_key(caller), None, self.scope),
            Window(Layer.USER, user_key(user), caller_class, self.scope),
        ]

    def _frozen(self, user: str) -> Window:
        return Window(Layer.FROZEN, user_key(user), None, self.scope)

    def note_counting_cost(self, seconds: float) -> None:
        """Fold what counting and recording one wrong PIN took into `counting_cost_s`."""
        weight = 1.0 if self._costs_noted == 0 else COST_WEIGHT
        self.counting_cost_s += weight * (seconds - self.counting_cost_s)
        self._costs_noted += 1

    def in_scope(self, state: LockState) -> bool:
        """True for this instance's own windows."""
        return state.scope == self.scope

    async def admit(
        self, caller: str, user: str, caller_class: CallerClass = CallerClass.UNLISTED
    ) -> Admission:
        """Count one PIN attempt in every layer of its class before it is checked, or name the
        layer that refuses it (FROZEN: the user is frozen, and nothing is counted).

        Raises LockoutUnavailable when the attempt cannot be recorded: then no PIN is checked.
        """
        windows = self._windows(caller, user, caller_class)
        counted: list[CountedAttempt] = []
        try:
            # Reads first: a flood while locked out writes nothing. The freeze is only read.
            for window in [self._frozen(user), *windows]:
                if not await self._limiter.test(self.limit(window), *window.identifiers()):
                    return Admission(window.layer)
            for window in windows:
                since_s = time.time()
                if not await self._limiter.hit(self.limit(window), *window.identifiers()):
                    # Another attempt took the last place first. No PIN is checked, so the
                    # places this one took in the other layers go back (if that fails, they
                    # stay counted: an error on the side of the lockout).
                    await self.give_back(Admission(None, tuple(counted)))
                    return Admission(window.layer)
                counted.append(CountedAttempt(window, since_s, time.time()))
        except Exception as exc:  # any storage failure: fail closed
            raise _unavailable(exc) from None
        return Admission(None, tuple(counted))

    async def give_back(self, admission: Admission) -> None:
        """The PIN was right: give this attempt back (earlier failures stay counted).

        Never raises: an attempt that cannot be given back stays counted, and is logged.
        """
        for attempt in admission.counted:
            key = self.storage_key(attempt.window)
            try:
                await self.store.release(key, attempt.since_s, attempt.until_s)
            except Exception as exc:  # the attempt stays counted: safe, and logged
                log.error("could not give back a correct PIN's attempt (%s)", type(exc).__name__)
                return

    async def freeze(self, user: str) -> bool:
        """Freeze `user`: from now on every PIN for that user is refused before it is checked, until
        an admin clears it. False when the user was frozen already; LockoutUnavailable when it
        cannot be recorded."""
        window = self._frozen(user)
        try:
            return await self._limiter.hit(self.limit(window), *window.identifiers())
        except Exception as exc:
            raise _unavailable(exc) from None

    async def record_failure(self, admission: Admission) -> list[LockState]:
        """The PIN was wrong (already counted): log and return the windows it locked."""
        tripped = []
        for attempt in admission.counted:
            window = attempt.window
            item = self.limit(window)
            try:
                stats = await self._limiter.get_window_stats(item, *window.identifiers())
            except Exception as exc:
                log.error("lockout storage: %s", type(exc).__name__)
                continue
            if stats.remaining > 0:
                continue
            state = self._state(window, item.amount, item.amount, stats.reset_time)
            tripped.append(state)
            log.warning(
                "lockout: %s",
                state.describe(),
                extra={
                    "fields": {
                        "LAYER": window.layer.value,
                        "CALLER_CLASS": window.caller_class or "",
                        "LOCKED_KEY": window.key,
                        "LOCKED_UNTIL": f"{state.until_s:.0f}",
                        "OUTCOME": "lockout",
                    }
                },
            )
        return tripped

    def _state(self, window: Window, failures: int, limit: int, until_s: float) -> LockState:
        frozen = window.layer is Layer.FROZEN
        return LockState(
            window.layer,
            window.key,
            failures,
            limit,
            until_s,
            window.caller_class,
            window.scope,
            self.storage_key(window),
            since_s=until_s - self._freeze.get_expiry() if frozen else 0.0,
        )

    def _parse(self, storage_key: str) -> Window | None:
        """The window of a storage key made with the current limits; None for any other."""
        parts = storage_key.split("/")
        if len(parts) < 6 or parts[1] not in Layer.__members__.values():
            return None
        layer, names = Layer(parts[1]), parts[2:-3]
        scope, _, first = names[0].rpartition(":")
        listed = names[1:] == [CallerClass.LISTED]
        if layer is Layer.GLOBAL and names[1:] == []:
            key = first if first == CallerClass.LISTED else CallerClass.UNLISTED
            window = Window(layer, key, CallerClass(key), scope)
        elif layer is Layer.USER and (listed or names[1:] == []):
            caller_class = CallerClass.LISTED if listed else CallerClass.UNLISTED
            window = Window(layer, first, caller_class, scope)
        elif layer in (Layer.CALLER, Layer.FROZEN) and names[1:] == []:
            window = Window(layer, first, None, scope)
        else:
            return None
        return window if self.storage_key(window) == storage_key else None

    async def status(self) -> list[LockState]:
        """Every window with failures on record, locked or not, in every scope, global first."""
        states = []
        try:
            for storage_key in await self.store.keys():
                window = self._parse(storage_key)
                if window is None:
                    continue
                item = self.limit(window)
                stats = await self._limiter.get_window_stats(item, *window.identifiers())
                failures = item.amount - stats.remaining
                if failures > 0:
                    states.append(self._state(window, failures, item.amount, stats.reset_time))
        except Exception as exc:
            raise _unavailable(exc) from None
        layers, classes = list(Layer), [None, *CallerClass]
        return sorted(
            states,
            key=lambda s: (s.scope, layers.index(s.layer), classes.index(s.caller_class), s.key),
        )

    async def unlock(
        self,
        caller: str | None = None,
        user: str | None = None,
        global_class: CallerClass | None = None,
    ) -> list[LockState]:
        """Clear one caller's, one user's (both classes, and a freeze) and/or one class's
        global window; or, when none is given, every window of every scope.

        Returns what was on record before in the windows cleared.
        """
        targets: list[Window] = []
        if caller is not None:
            targets.append(Window(Layer.CALLER, named_caller_key(caller), None, self.scope))
        if user is not None:
            targets += [Window(Layer.USER, user_key(user), c, self.scope) for c in CallerClass]
            targets.append(self._frozen(user))
        if global_class is not None:
            targets.append(Window(Layer.GLOBAL, global_class, global_class, self.scope))
        before = await self.status()
        if not targets:
            try:
                await self.store.storage.reset()
            except Exception as exc:
                raise _unavailable(exc) from None
            return before
        await self._clear(targets)
        return [s for s in before if s.window in targets]

    async def unlock_window(self, storage_key: str) -> LockState | None:
        """Clear exactly the window `status` reported with this `storage_key`, in any scope;
        None (and nothing cleared) when no window with failures on record has it."""
        found = next((s for s in await self.status() if s.storage_key == storage_key), None)
        if found is not None:
            await self._clear([found.window])
        return found

    async def unlock_scope(self) -> list[LockState]:
        """Clear every window of this instance's scope (the phone's, or the admin page's);
        return what was on record before."""
        states = [s for s in await self.status() if self.in_scope(s)]
        await self._clear([s.window for s in states])
        return states

    async def _clear(self, windows: list[Window]) -> None:
        try:
            for window in windows:
                await self._limiter.clear(self.limit(window), *window.identifiers())
        except Exception as exc:
            raise _unavailable(exc) from None

    async def report(
        self, set_count: Callable[[Layer, str, int], None], force: bool = False
    ) -> None:
        """Publish how many windows each layer and class holds locked (at most once a second,
        unless forced)."""
        now_s = time.monotonic()
        if not force and now_s - self._reported_s < REPORT_EVERY_S:
            return
        self._reported_s = now_s
        try:
            states = await self.status()
        except LockoutUnavailable:
            return
        publish_locked(set_count, [s for s in states if self.in_scope(s)])

    async def close(self) -> None:
        """Release the storage's connections."""
        await self.store.close()


def publish_locked(set_count: Callable[[Layer, str, int], None], states: list[LockState]) -> None:
    """Set `totpd_lockouts_active{layer, class}` from `states` (the caller layer's windows
    are per number and a freeze per user, whatever the class: `class="any"`)."""
    locked = [(s.layer, s.caller_class or "any") for s in states if s.locked]
    for layer in Layer:
        classless = layer in (Layer.CALLER, Layer.FROZEN)
        for label in ["any"] if classless else list(CallerClass):
            set_count(layer, label, locked.count((layer, label)))
