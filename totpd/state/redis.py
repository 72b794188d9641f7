"""Shared state in Redis, for replicas behind one load balancer: calls, JWT ids, lockout windows.

Every step that must not race is one Lua script (Redis runs a script atomically), so two
replicas act as one: a call is claimed by exactly one request, a `jti` is accepted once, and a
PIN attempt is counted by `limits`' own moving-window script before any PIN is checked.

When Redis cannot be reached every operation raises (StateUnavailable, LockoutUnavailable
through the lockout layer): the web layer answers 503 and no PIN is checked. The client
reconnects by itself once Redis is back.

totpd's scripts go by EVAL, and `limits`' scripts are loaded into Redis's script cache before
first use (again after any failure, e.g. a restarted Redis): an EVALSHA that meets an empty
cache fails, and the client then drops the connection under every request sharing it.

Keys: `totpd:call:<uuid>` (a hash: call, step, busy), `totpd:jti:<jti>`, and the lockout
windows under `totpd:lockout:` in `limits`' own layout.
"""

import asyncio
from importlib import resources
from typing import Any, cast

import coredis
from coredis.exceptions import RedisError
from coredis.retry import NoRetryPolicy
from limits.aio.storage import RedisStorage, Storage

from totpd.errors import StateUnavailable
from totpd.flow import Call, Step
from totpd.state import decode_call, encode_call

PREFIX = "totpd"
LOCKOUT_PREFIX = f"{PREFIX}:lockout"
TIMEOUTS_S: dict[str, float] = {"stream_timeout": 2.0, "connect_timeout": 1.0}
FAILURES = (RedisError, OSError, TimeoutError)

# KEYS[1] call; ARGV: call JSON, step, ttl
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'call', ARGV[1], 'step', ARGV[2], 'busy', '0')
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
# KEYS[1] call; ARGV: step. The call's JSON when it waited at that step and nobody held it.
CLAIM = """
local held = redis.call('HMGET', KEYS[1], 'step', 'busy', 'call')
if held[1] ~= ARGV[1] or held[2] ~= '0' then return false end
redis.call('HSET', KEYS[1], 'busy', '1')
return held[3]
"""
# KEYS[1] call; ARGV: call JSON, step, ttl. A call that hung up meanwhile stays gone.
SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'call', ARGV[1], 'step', ARGV[2], 'busy', '0')
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
# KEYS[1] call. Its last state, and it is gone.
DISCARD = """
local call = redis.call('HGET', KEYS[1], 'call')
redis.call('DEL', KEYS[1])
return call
"""
# KEYS[1] a `limits` moving window (a list of timestamps, newest first); ARGV: since, until.
# Removes the newest entry in [since, until]: the attempt a correct PIN gives back.
RELEASE = """
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
for index, entry in ipairs(entries) do
  local at = tonumber(entry)
  if at and at >= tonumber(ARGV[1]) and at <= tonumber(ARGV[2]) then
    redis.call('LSET', KEYS[1], index - 1, '(released)')
    redis.call('LREM', KEYS[1], 1, '(released)')
    return 1
  end
end
return 0
"""
RELEASE_SLACK_S = 0.001  # timestamps pass through Lua's number formatting
# The moving window's scripts as `limits` ships them. No public API names them, so they are read
# from its package data, and pyproject pins the `limits` version this layout was checked against.
LIMITS_SCRIPTS_DIR = "resources/redis/lua_scripts"
LIMITS_SCRIPTS = ("moving_window.lua", "acquire_moving_window.lua")


def limits_scripts() -> list[bytes]:
    """The Lua source of `limits`' moving-window scripts, to load into Redis's script cache."""
    scripts = resources.files("limits").joinpath(LIMITS_SCRIPTS_DIR)
    return [scripts.joinpath(name).read_bytes() for name in LIMITS_SCRIPTS]


def _unavailable(exc: Exception) -> StateUnavailable:
    return StateUnavailable(f"shared state (Redis): {type(exc).__name__}")


class RedisState:
    """One Redis client for the call store, the replay cache and the lockout windows."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: coredis.Redis[str] = coredis.Redis.from_url(
            url,
            decode_responses=True,
            stream_timeout=TIMEOUTS_S["stream_timeout"],
            connect_timeout=TIMEOUTS_S["connect_timeout"],
            # A retried script may run twice (its first reply lost): a call would look
            # created already, a jti replayed. Fail the request instead; Vonage retries.
            retry_policy=NoRetryPolicy(),
        )
        # `limits`' storage gets a pool of ours (its documented `connection_pool` option), so
        # that close() releases its connections too.
        self.limits_pool = coredis.ConnectionPool.from_url(
            url,
            stream_timeout=TIMEOUTS_S["stream_timeout"],
            connect_timeout=TIMEOUTS_S["connect_timeout"],
        )
        self._scripts_loaded = False
        self._loading: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return "RedisState(...)"  # the URL may carry a password

    async def run(self, script: str, keys: tuple[str, ...], args: tuple[str | int, ...]) -> Any:
        """Run one of totpd's scripts (atomic in Redis); StateUnavailable on any failure."""
        try:
            return await self.client.eval(script, keys, args)
        except FAILURES as exc:
            raise _unavailable(exc) from None

    async def load_limits_scripts(self) -> None:
        """Put `limits`' scripts into Redis's script cache, once (again after a failure)."""
        if self._scripts_loaded:
            return
        self._loading = self._loading or asyncio.Lock()
        async with self._loading:
            if not self._scripts_loaded:
                for script in limits_scripts():
                    await self.client.script_load(script)
                self._scripts_loaded = True

    def lost(self) -> None:
        """Redis failed: it may come back empty, so load the scripts again before next use."""
        self._scripts_loaded = False

    def calls(self) -> "RedisCallStore":
        """The call store over this client."""
        return RedisCallStore(self)

    def replays(self) -> "RedisReplayCache":
        """The replay cache over this client."""
        return RedisReplayCache(self)

    def windows(self) -> "RedisWindows":
        """The lockout window store over this Redis."""
        return RedisWindows(self)

    def close(self) -> None:
        """Drop the connections of the client and of `limits`' storage."""
        self.client.connection_pool.disconnect()
        self.limits_pool.disconnect()


def _call_key(uuid: str) -> str:
    return f"{PREFIX}:call:{uuid}"


class RedisCallStore:
    """CallStore in Redis (see totpd.state.CallStore)."""

    def __init__(self, state: RedisState) -> None:
        self._state = state

    async def create(self, call: Call, ttl_s: int) -> bool:
        """See CallStore."""
        args = (encode_call(call), call.step.value, ttl_s)
        return bool(await self._state.run(CREATE, (_call_key(call.uuid),), args))

    async def claim(self, uuid: str, step: Step) -> Call | None:
        """See CallStore."""
        text = await self._state.run(CLAIM, (_call_key(uuid),), (step.value,))
        return decode_call(cast(str, text)) if text else None

    async def settle(self, call: Call, ttl_s: int) -> None:
        """See CallStore."""
        if call.step is Step.ENDED:
            await self._state.run(DISCARD, (_call_key(call.uuid),), ())
        else:
            args = (encode_call(call), call.step.value, ttl_s)
            await self._state.run(SETTLE, (_call_key(call.uuid),), args)

    async def discard(self, uuid: str) -> Call | None:
        """See CallStore."""
        text = await self._state.run(DISCARD, (_call_key(uuid),), ())
        return decode_call(cast(str, text)) if text else None

    async def count(self) -> int:
        """See CallStore."""
        try:
            return sum([1 async for _ in self._state.client.scan_iter(f"{PREFIX}:call:*")])
        except FAILURES as exc:
            raise _unavailable(exc) from None


class RedisReplayCache:
    """ReplayCache in Redis: one key per `jti`, expiring with the freshness window."""

    def __init__(self, state: RedisState) -> None:
        self._client = state.client

    async def first_use(self, jti: str, ttl_s: int) -> bool:
        """See ReplayCache."""
        try:
            return await self._client.set(
                f"{PREFIX}:jti:{jti}", "1", condition=coredis.PureToken.NX, ex=ttl_s
            )
        except FAILURES as exc:
            raise _unavailable(exc) from None


class _LimitsStorage(RedisStorage):
    """`limits`' Redis storage, with its scripts loaded before the moving window runs them."""

    def __init__(self, state: RedisState) -> None:
        super().__init__(
            "async+" + state.url,
            key_prefix=LOCKOUT_PREFIX,
            connection_pool=state.limits_pool,  # type: ignore[arg-type]  # typed too narrowly
        )
        self._state = state

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """See limits' RedisStorage."""
        try:
            await self._state.load_limits_scripts()
            return await super().acquire_entry(key, limit, expiry, amount)
        except Exception:
            self._state.lost()
            raise

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """See limits' RedisStorage."""
        try:
            await self._state.load_limits_scripts()
            return await super().get_moving_window(key, limit, expiry)
        except Exception:
            self._state.lost()
            raise


class RedisWindows:
    """The lockout's WindowStore in Redis: `limits`' own Redis storage, and two more verbs."""

    def __init__(self, state: RedisState) -> None:
        self._state = state
        self._storage = _LimitsStorage(state)

    @property
    def storage(self) -> Storage:
        """The `limits` storage the moving-window strategy runs on."""
        return self._storage

    async def keys(self) -> list[str]:
        """See WindowStore (raises on a Redis failure; the lockout turns it into its own)."""
        start = len(LOCKOUT_PREFIX) + 1
        scan = self._state.client.scan_iter(f"{LOCKOUT_PREFIX}:*")
        return [k[start:] async for k in scan]

    async def release(self, key: str, since_s: float, until_s: float) -> None:
        """See WindowStore."""
        bounds = (f"{since_s - RELEASE_SLACK_S:.6f}", f"{until_s + RELEASE_SLACK_S:.6f}")
        await self._state.run(RELEASE, (f"{LOCKOUT_PREFIX}:{key}",), bounds)

    async def close(self) -> None:
        """Nothing beyond RedisState.close."""
