"""Shared state in a real redis-server: the call store, the replay cache and the lockout
windows, as two replicas (two clients) see them, and what happens when Redis goes away."""

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from tests.servers import RedisServer
from tests.state.calls import (
    TTL_S,
    late_ending_leaves_a_new_call_alone,
    late_settle_leaves_a_held_new_call_held,
    late_settle_leaves_a_new_call_alone,
    pin_call,
)
from totpd.config import LockoutConfig
from totpd.errors import LockoutUnavailable, StateUnavailable
from totpd.flow import Step
from totpd.lockout import Lockout
from totpd.lockout_windows import Layer
from totpd.state.redis import RedisState, limits_scripts

pytestmark = pytest.mark.redis


@pytest.fixture
async def connect(redis_server: RedisServer) -> AsyncIterator[Callable[[], RedisState]]:
    """Open RedisState clients on the test server (each one stands for a replica)."""
    opened: list[RedisState] = []

    def open_one() -> RedisState:
        state = RedisState(redis_server.url)
        opened.append(state)
        return state

    yield open_one
    for state in opened:
        state.close()


async def test_a_call_is_created_once(connect: Callable[[], RedisState]) -> None:
    calls = connect().calls()
    assert await calls.create(pin_call(), TTL_S)
    assert not await connect().calls().create(pin_call(), TTL_S)  # a replayed answer


async def test_one_request_claims_a_call_however_many_replicas_race(
    connect: Callable[[], RedisState],
) -> None:
    replicas = [connect().calls() for _ in range(4)]
    await replicas[0].create(pin_call(), TTL_S)
    claims = await asyncio.gather(*(replicas[i % 4].claim("call-1", Step.PIN) for i in range(100)))
    assert sum(1 for c in claims if c is not None) == 1


async def test_a_call_moves_only_forward(connect: Callable[[], RedisState]) -> None:
    a, b = connect().calls(), connect().calls()
    await a.create(pin_call(), TTL_S)
    assert await b.claim("call-1", Step.MENU) is None  # out of order
    claimed = await b.claim("call-1", Step.PIN)
    assert claimed == pin_call()
    assert claimed is not None
    await b.settle(replace(claimed, step=Step.MENU), TTL_S)
    assert await a.claim("call-1", Step.PIN) is None  # a replayed PIN step finds nothing
    at_menu = await a.claim("call-1", Step.MENU)
    assert at_menu is not None
    assert at_menu.step is Step.MENU


async def test_a_call_that_hung_up_is_not_brought_back(connect: Callable[[], RedisState]) -> None:
    a, b = connect().calls(), connect().calls()
    await a.create(pin_call(), TTL_S)
    claimed = await a.claim("call-1", Step.PIN)
    assert claimed is not None
    assert await b.discard("call-1") == claimed  # the event webhook, on another replica
    await a.settle(claimed, TTL_S)
    assert await b.claim("call-1", Step.PIN) is None
    assert await a.count() == 0


async def test_an_ended_call_is_forgotten(connect: Callable[[], RedisState]) -> None:
    calls = connect().calls()
    await calls.create(pin_call(), TTL_S)
    await calls.create(pin_call("call-2"), TTL_S)
    assert await calls.count() == 2
    claimed = await calls.claim("call-1", Step.PIN)
    assert claimed is not None
    await calls.settle(replace(claimed, step=Step.ENDED), TTL_S)
    assert await calls.count() == 1
    assert await calls.discard("call-1") is None


async def test_a_jwt_id_is_accepted_once_across_replicas(
    connect: Callable[[], RedisState],
) -> None:
    a, b = connect().replays(), connect().replays()
    assert await a.first_use("jti-1", TTL_S)
    assert not await b.first_use("jti-1", TTL_S)
    assert await b.first_use("jti-2", TTL_S)


async def test_replicas_share_the_lockout_bound(connect: Callable[[], RedisState]) -> None:
    config = LockoutConfig(per_user="1000 per hour")
    lockouts = [Lockout(config, connect().windows()) for _ in range(3)]
    outcomes = await asyncio.gather(
        *(lockouts[i % 3].admit(f"4479{i:08d}", "alice") for i in range(300))
    )
    assert sum(1 for a in outcomes if a.refused_by is None) == 10
    [state] = [s for s in await lockouts[1].status() if s.layer is Layer.GLOBAL]
    assert (state.failures, state.locked) == (10, True)


async def test_a_correct_pin_gives_back_only_its_own_attempt(
    connect: Callable[[], RedisState],
) -> None:
    lockout = Lockout(LockoutConfig(), connect().windows())
    for index in range(3):
        failed = await lockout.admit(f"44790000000{index}", "alice")
        await lockout.record_failure(failed)
    correct = await lockout.admit("447700900001", "alice")
    await lockout.give_back(correct)
    failures = {(s.layer, s.key): s.failures for s in await lockout.status()}
    assert failures[(Layer.GLOBAL, "unlisted")] == 3
    assert failures[(Layer.USER, "alice")] == 3
    assert (Layer.CALLER, "447700900001") not in failures


async def test_unlock_on_one_replica_is_seen_by_another(
    connect: Callable[[], RedisState],
) -> None:
    a = Lockout(LockoutConfig(), connect().windows())
    b = Lockout(LockoutConfig(), connect().windows())
    for _ in range(3):
        await a.admit("447700900001", "alice")
    assert (await b.admit("447700900001", "alice")).refused_by is Layer.CALLER
    cleared = await a.unlock(caller="447700900001")
    assert [(s.layer, s.failures) for s in cleared] == [(Layer.CALLER, 3)]
    assert (await b.admit("447700900001", "alice")).refused_by is None
    await b.unlock()
    assert await a.status() == []


async def test_the_pinned_limits_scripts_are_cached_before_the_first_attempt(
    connect: Callable[[], RedisState],
) -> None:
    # pyproject pins `limits`: totpd reads its moving-window scripts from its package data.
    state = connect()
    lockout = Lockout(LockoutConfig(), state.windows())
    assert (await lockout.admit("447700900001", "alice")).refused_by is None
    # Redis names a cached script by its SHA-1.
    digests = tuple(hashlib.sha1(s, usedforsecurity=False).hexdigest() for s in limits_scripts())
    assert len(digests) == 2
    assert await state.client.script_exists(digests) == (True, True)


async def test_redis_going_away_fails_closed_and_recovers(
    redis_server: RedisServer, connect: Callable[[], RedisState]
) -> None:
    state = connect()
    calls, replays = state.calls(), state.replays()
    lockout = Lockout(LockoutConfig(), state.windows())
    await calls.create(pin_call(), TTL_S)
    redis_server.stop()
    with pytest.raises(StateUnavailable):
        await calls.claim("call-1", Step.PIN)
    with pytest.raises(StateUnavailable):
        await replays.first_use("jti-1", TTL_S)
    with pytest.raises(LockoutUnavailable):
        await lockout.admit("447700900001", "alice")
    with pytest.raises(LockoutUnavailable):
        await lockout.status()
    redis_server.start()  # back, empty (no persistence in tests)
    assert (await lockout.admit("447700900001", "alice")).refused_by is None
    assert await replays.first_use("jti-1", TTL_S)
    assert await calls.create(pin_call("call-2"), TTL_S)


async def test_a_late_settle_never_writes_over_a_new_call_with_the_same_uuid(
    connect: Callable[[], RedisState],
) -> None:
    await late_settle_leaves_a_new_call_alone(connect().calls())


async def test_a_late_settle_never_releases_a_new_call_another_request_holds(
    connect: Callable[[], RedisState],
) -> None:
    await late_settle_leaves_a_held_new_call_held(connect().calls())


async def test_a_late_ending_never_forgets_a_new_call_with_the_same_uuid(
    connect: Callable[[], RedisState],
) -> None:
    await late_ending_leaves_a_new_call_alone(connect().calls())
