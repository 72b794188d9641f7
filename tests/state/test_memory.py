"""The embedded call store in this process: a call moves only forward, and a late request
never writes over a newer call that has the same uuid."""

from tests.state.calls import (
    late_ending_leaves_a_new_call_alone,
    late_settle_leaves_a_held_new_call_held,
    late_settle_leaves_a_new_call_alone,
)
from totpd.state.memory import MemoryCallStore


async def test_a_late_settle_never_writes_over_a_new_call_with_the_same_uuid() -> None:
    await late_settle_leaves_a_new_call_alone(MemoryCallStore())


async def test_a_late_settle_never_releases_a_new_call_another_request_holds() -> None:
    await late_settle_leaves_a_held_new_call_held(MemoryCallStore())


async def test_a_late_ending_never_forgets_a_new_call_with_the_same_uuid() -> None:
    await late_ending_leaves_a_new_call_alone(MemoryCallStore())
