"""Where totpd keeps what outlives one request: calls in progress, JWT ids seen, PIN attempts.

Three seams, each a protocol with a backend per storage, as `limits` keeps its strategies apart
from `limits.aio.storage`:

    CallStore     calls in progress      memory.MemoryCallStore    redis.RedisCallStore
    ReplayCache   JWT ids seen           memory.MemoryReplayCache  redis.RedisReplayCache
    WindowStore   lockout windows        journal.JournalWindows    redis.RedisWindows

`[lockout] storage = "embedded"` keeps calls and JWT ids in memory and the lockout windows in a
journal file in the state directory; a redis:// URI puts all three in Redis, shared by replicas.
When a store cannot be reached it raises StateUnavailable (the web layer answers 503, never 500);
the lockout policy that runs on a WindowStore is totpd.lockout.

A call moves only forward. `claim` takes a call that waits at a given step and marks it busy
in one atomic move, so a duplicate or out-of-order input finds nothing to take; `settle`
stores the next state (or forgets an ended call).
"""

import json
from dataclasses import asdict
from typing import Any, Protocol

from limits.aio.storage import Storage

from totpd.flow import Call, Choice, Step


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


class WindowStore(Protocol):
    """A `limits` moving-window storage, plus what `limits` has no verb for."""

    @property
    def storage(self) -> Storage:
        """The storage the `limits` strategy runs on."""

    async def keys(self) -> list[str]:
        """Every window key with attempts that still count."""

    async def release(self, key: str, since_s: float, until_s: float) -> None:
        """Give back one attempt in `key` counted between `since_s` and `until_s`."""

    async def close(self) -> None:
        """Release connections."""
