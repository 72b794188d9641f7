"""The call store in this process: the embedded storage's part in memory only (a call does
not outlive a restart: Vonage's next webhook for it finds nothing and is refused).

Safe without locks: nothing here awaits between a read and a write. It prunes as it goes, so
it cannot grow without bound.
"""

import time
from dataclasses import dataclass, replace

from totpd.flow import Call, Step
from totpd.state import new_generation

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
        created = replace(call, generation=new_generation())
        self._calls[call.uuid] = _StoredCall(created, busy=False, expires_s=now_s + ttl_s)
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
        stored = self._calls.get(call.uuid)
        if stored is None or not stored.busy or stored.call.generation != call.generation:
            return
        if call.step is Step.ENDED:
            del self._calls[call.uuid]
        else:
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
