"""The call store and the replay cache in this process: the embedded storage's half in memory.

Safe without locks: nothing here awaits between a read and a write. Both prune as they go, so
neither can grow without bound.
"""

import time
from dataclasses import dataclass

from totpd.flow import Call, Step

SWEEP_EVERY_S = 30.0


@dataclass
class _StoredCall:
    """A call as the store keeps it: its state, whether a request holds it, when it expires."""

    call: Call
    busy: bool
    expires_s: float


class MemoryCallStore:
    """CallStore in this process (see totpd.state.CallStore)."""

    def __init__(self) -> None:
        self._calls: dict[str, _StoredCall] = {}
        self._next_sweep_s = 0.0

    def _sweep(self, now_s: float) -> None:
        if now_s >= self._next_sweep_s:
            self._calls = {u: s for u, s in self._calls.items() if s.expires_s > now_s}
            self._next_sweep_s = now_s + SWEEP_EVERY_S

    async def create(self, call: Call, ttl_s: int) -> bool:
        """See CallStore."""
        now_s = time.monotonic()
        self._sweep(now_s)
        stored = self._calls.get(call.uuid)
        if stored is not None and stored.expires_s > now_s:
            return False
        self._calls[call.uuid] = _StoredCall(call, busy=False, expires_s=now_s + ttl_s)
        return True

    async def claim(self, uuid: str, step: Step) -> Call | None:
        """See CallStore."""
        stored = self._calls.get(uuid)
        if stored is None or stored.busy or stored.call.step != step:
            return None
        if stored.expires_s <= time.monotonic():
            del self._calls[uuid]
            return None
        stored.busy = True
        return stored.call

    async def settle(self, call: Call, ttl_s: int) -> None:
        """See CallStore."""
        if call.step is Step.ENDED:
            self._calls.pop(call.uuid, None)
        elif call.uuid in self._calls:
            expires_s = time.monotonic() + ttl_s
            self._calls[call.uuid] = _StoredCall(call, busy=False, expires_s=expires_s)

    async def discard(self, uuid: str) -> Call | None:
        """See CallStore."""
        stored = self._calls.pop(uuid, None)
        return stored.call if stored else None

    async def count(self) -> int:
        """See CallStore."""
        self._sweep(time.monotonic())
        return len(self._calls)


class MemoryReplayCache:
    """ReplayCache in this process (see totpd.state.ReplayCache)."""

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
