"""Where calls in progress and seen JWT ids live: in this process, or shared through Redis.

A call moves only forward. `claim` takes a call that waits at a given step and marks it busy
in one atomic move, so a duplicate or out-of-order input finds nothing to take; `settle`
stores the next state (or forgets an ended call). The Redis versions are in
totpd.redis_state; when their storage fails they raise StateUnavailable (a 503, never a 500).
"""

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from totpd.errors import TotpdError
from totpd.flow import Call, Choice, Step

SWEEP_EVERY_S = 30.0


class StateUnavailable(TotpdError):
    """Shared call state or the replay cache cannot be reached: refuse, do not guess."""


def encode_call(call: Call) -> str:
    """A call as JSON text (for Redis)."""
    return json.dumps(asdict(call))


def decode_call(text: str | bytes) -> Call:
    """The inverse of `encode_call`."""
    fields: dict[str, Any] = json.loads(text)
    fields["step"] = Step(fields["step"])
    fields["choices"] = tuple(Choice(**c) for c in fields["choices"])
    return Call(**fields)


class CallStore(Protocol):
    """Calls in progress, keyed by Vonage call uuid, expiring after `ttl_s`."""

    async def create(self, call: Call, ttl_s: int) -> bool:
        """Store a new call; False if the uuid is already known (a replayed answer)."""

    async def claim(self, uuid: str, step: Step) -> Call | None:
        """Take the call if it waits at `step` and nobody else holds it; else None."""

    async def settle(self, call: Call, ttl_s: int) -> None:
        """Store a claimed call's next state and release it; an ended call is forgotten.

        A call that was discarded meanwhile (the caller hung up) stays gone.
        """

    async def discard(self, uuid: str) -> Call | None:
        """Forget a call (it hung up); return its last state if it was known."""

    async def count(self) -> int:
        """How many calls are in progress."""


class ReplayCache(Protocol):
    """JWT ids seen within the freshness window."""

    async def first_use(self, jti: str, ttl_s: int) -> bool:
        """Record `jti`; True the first time it is seen within `ttl_s`, False on a replay."""


@dataclass
class _Held:
    call: Call
    busy: bool
    expires_s: float


class MemoryCallStore:
    """CallStore in this process. Safe without locks: nothing here awaits between read and write."""

    def __init__(self) -> None:
        self._calls: dict[str, _Held] = {}
        self._next_sweep_s = 0.0

    def _sweep(self, now_s: float) -> None:
        if now_s >= self._next_sweep_s:
            self._calls = {u: h for u, h in self._calls.items() if h.expires_s > now_s}
            self._next_sweep_s = now_s + SWEEP_EVERY_S

    async def create(self, call: Call, ttl_s: int) -> bool:
        """See CallStore."""
        now_s = time.monotonic()
        self._sweep(now_s)
        held = self._calls.get(call.uuid)
        if held is not None and held.expires_s > now_s:
            return False
        self._calls[call.uuid] = _Held(call, busy=False, expires_s=now_s + ttl_s)
        return True

    async def claim(self, uuid: str, step: Step) -> Call | None:
        """See CallStore."""
        held = self._calls.get(uuid)
        if held is None or held.busy or held.call.step != step:
            return None
        if held.expires_s <= time.monotonic():
            del self._calls[uuid]
            return None
        held.busy = True
        return held.call

    async def settle(self, call: Call, ttl_s: int) -> None:
        """See CallStore."""
        if call.step is Step.ENDED:
            self._calls.pop(call.uuid, None)
        elif call.uuid in self._calls:
            self._calls[call.uuid] = _Held(call, busy=False, expires_s=time.monotonic() + ttl_s)

    async def discard(self, uuid: str) -> Call | None:
        """See CallStore."""
        held = self._calls.pop(uuid, None)
        return held.call if held else None

    async def count(self) -> int:
        """See CallStore."""
        self._sweep(time.monotonic())
        return len(self._calls)


class MemoryReplayCache:
    """ReplayCache in this process, pruned as it goes so it cannot grow without bound."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._next_sweep_s = 0.0

    async def first_use(self, jti: str, ttl_s: int) -> bool:
        """See ReplayCache."""
        now_s = time.monotonic()
        if now_s >= self._next_sweep_s:
            self._seen = {j: t for j, t in self._seen.items() if t > now_s}
            self._next_sweep_s = now_s + SWEEP_EVERY_S
        expires_s = self._seen.get(jti)
        if expires_s is not None and expires_s > now_s:
            return False
        self._seen[jti] = now_s + ttl_s
        return True
