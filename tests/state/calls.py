"""What every CallStore backend must do, written once and run against each (memory, Redis)."""

from dataclasses import replace

from totpd.flow import Call, Step
from totpd.state import CallStore

TTL_S = 60


def pin_call(uuid: str = "call-1") -> Call:
    """A call waiting for its PIN."""
    return Call(uuid, "447700900001", Step.PIN, user="alice")


async def late_settle_leaves_a_new_call_alone(store: CallStore) -> None:
    """A request still holding a call that hung up settles after a new call took its uuid."""
    await store.create(pin_call(), TTL_S)
    old = await store.claim("call-1", Step.PIN)
    assert old is not None
    assert await store.discard("call-1") is not None  # hung up while its PIN was checked
    assert await store.create(pin_call(), TTL_S)  # a new call under the same uuid
    await store.settle(replace(old, step=Step.MENU), TTL_S)  # the old request finishes
    assert await store.claim("call-1", Step.MENU) is None
    assert await store.claim("call-1", Step.PIN) is not None  # the new call waits where it was


async def late_settle_leaves_a_held_new_call_held(store: CallStore) -> None:
    """The same, while a request of the new call holds it: the old one cannot release it."""
    await store.create(pin_call(), TTL_S)
    old = await store.claim("call-1", Step.PIN)
    assert old is not None
    await store.discard("call-1")
    assert await store.create(pin_call(), TTL_S)
    new = await store.claim("call-1", Step.PIN)
    assert new is not None
    await store.settle(replace(old, step=Step.MENU), TTL_S)
    assert await store.claim("call-1", Step.MENU) is None
    assert await store.claim("call-1", Step.PIN) is None  # still held by the new call's request
    await store.settle(replace(new, step=Step.MENU), TTL_S)  # which settles it as usual
    assert await store.claim("call-1", Step.MENU) is not None


async def late_ending_leaves_a_new_call_alone(store: CallStore) -> None:
    """An old request that ends its call must not forget a new call under the same uuid."""
    await store.create(pin_call(), TTL_S)
    old = await store.claim("call-1", Step.PIN)
    assert old is not None
    await store.discard("call-1")
    assert await store.create(pin_call(), TTL_S)
    await store.settle(replace(old, step=Step.ENDED), TTL_S)
    assert await store.count() == 1
    assert await store.claim("call-1", Step.PIN) is not None
