"""The lockout policy over the embedded journal: layers, bounds, give-backs, status, unlock."""

import asyncio
import json
import time
from pathlib import Path

from tests.helpers import CALLER, checked, open_lockout, wrong_pins
from totpd.lockout_windows import WITHHELD, CallerClass, Layer, Window, classify
from totpd.state.journal import JOURNAL_FILE
from totpd.users import User


async def test_caller_layer_trips_after_its_limit(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state")
    outcomes = await wrong_pins(lockout, CALLER, "alice", 5)
    assert checked(outcomes) == 3
    assert [a.refused_by for a in outcomes[3:]] == [Layer.CALLER, Layer.CALLER]
    assert (await lockout.admit("447700900002", "bob")).refused_by is None


async def test_rotating_callers_are_bounded_by_the_global_breaker(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state", per_user="1000 per hour")
    outcomes = []
    for index in range(300):
        outcomes += await wrong_pins(lockout, f"4479{index:08d}", f"user{index % 4}", 1)
    assert checked(outcomes) == 10
    assert {a.refused_by for a in outcomes[10:]} == {Layer.GLOBAL}


async def test_withheld_callers_share_one_caller_window(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state", per_user="1000 per hour")
    outcomes = await wrong_pins(lockout, "", "alice", 2) + await wrong_pins(lockout, "", "bob", 2)
    assert checked(outcomes) == 3
    assert outcomes[-1].refused_by is Layer.CALLER
    [state] = [s for s in await lockout.status() if s.layer is Layer.CALLER]
    assert (state.key, state.locked) == (WITHHELD, True)


async def test_unknown_users_share_one_user_window(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state", per_caller="1000 per hour")
    outcomes = await wrong_pins(lockout, CALLER, "", 7)
    assert checked(outcomes) == 5
    assert outcomes[-1].refused_by is Layer.USER


async def test_a_correct_pin_does_not_reset_the_global_breaker(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state", per_user="1000 per hour")
    for index in range(4):
        await wrong_pins(lockout, f"44790000000{index}", "alice", 1)
    correct = await lockout.admit("447700900009", "alice")
    assert correct.refused_by is None
    await lockout.give_back(correct)
    global_state = next(s for s in await lockout.status() if s.layer is Layer.GLOBAL)
    assert global_state.failures == 4  # the 4 failures stay; the success itself is not one
    outcomes = [await lockout.admit(f"44791111111{i}", "mallory") for i in range(10)]
    assert checked(outcomes) == 6


async def test_concurrent_attempts_never_exceed_the_bound(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state", per_user="1000 per hour")
    outcomes = await asyncio.gather(
        *(lockout.admit(f"4479{i:08d}", f"user{i % 3}") for i in range(300))
    )
    assert checked(list(outcomes)) == 10
    global_state = next(s for s in await lockout.status() if s.layer is Layer.GLOBAL)
    assert (global_state.failures, global_state.locked) == (10, True)


async def test_unlock_of_one_caller_leaves_the_other_layers(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state")
    await wrong_pins(lockout, CALLER, "alice", 3)
    await wrong_pins(lockout, "447700900002", "bob", 3)
    await lockout.unlock(caller=CALLER)
    left = {(s.layer, s.key): s.failures for s in await lockout.status()}
    assert left == {
        (Layer.GLOBAL, "unlisted"): 6,
        (Layer.CALLER, "447700900002"): 3,
        (Layer.USER, "alice"): 3,
        (Layer.USER, "bob"): 3,
    }
    await lockout.unlock()
    assert await lockout.status() == []


async def test_status_says_until_when(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state")
    started_s = time.time()
    await wrong_pins(lockout, CALLER, "alice", 3)
    caller = next(s for s in await lockout.status() if s.layer is Layer.CALLER)
    assert caller.locked
    assert started_s + 900 <= caller.until_s <= time.time() + 900
    assert caller.describe().startswith(f"caller {CALLER}: 3/3 failures, locked until ")


async def test_old_failures_do_not_count(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    lockout = open_lockout(state_dir)
    key = lockout.storage_key(Window(Layer.CALLER, CALLER, None))
    old_s = time.time() - 901
    with (state_dir / JOURNAL_FILE).open("w") as journal:
        for _ in range(3):
            journal.write(json.dumps({"op": "hit", "key": key, "at": old_s, "ttl": 900}) + "\n")
    assert (await lockout.admit(CALLER, "alice")).refused_by is None


def test_an_attempt_is_listed_only_from_a_number_on_the_users_own_allowlist() -> None:
    alice = User("alice", 1, "hash", (), (CALLER,))
    bob = User("bob", 2, "hash", ())
    assert classify(alice, CALLER) is CallerClass.LISTED
    assert classify(alice, "447700900002") is CallerClass.UNLISTED
    assert classify(alice, "") is CallerClass.UNLISTED  # withheld
    assert classify(bob, CALLER) is CallerClass.UNLISTED  # no allowlist: anyone may try
    assert classify(None, CALLER) is CallerClass.UNLISTED  # a keypad number nobody has


async def test_unlisted_attempts_never_spend_the_listed_windows(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state")
    for index in range(300):
        await wrong_pins(lockout, f"4479{index:08d}", ("alice", "bob", "")[index % 3], 1)
    assert (await lockout.admit("447799999999", "alice")).refused_by is Layer.GLOBAL
    listed = await lockout.admit(CALLER, "alice", CallerClass.LISTED)
    assert listed.refused_by is None
    locked = [s.describe().split(":")[0] for s in await lockout.status() if s.locked]
    assert locked == ["global (unlisted callers)"]  # 10 attempts: no user window reached 5


async def test_listed_attempts_have_a_bound_of_their_own(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state", per_user="1000 per hour", global_listed="4 per day")
    outcomes = []
    for index in range(30):  # spoofed numbers from alice's allowlist
        outcomes += await wrong_pins(lockout, f"4477{index:08d}", "alice", 1, CallerClass.LISTED)
    assert checked(outcomes) == 4
    assert (await lockout.admit(CALLER, "bob")).refused_by is None  # unlisted: untouched
    states = {(s.layer, s.key, s.caller_class): s.failures for s in await lockout.status()}
    assert states[(Layer.GLOBAL, "listed", CallerClass.LISTED)] == 4
    assert states[(Layer.USER, "alice", CallerClass.LISTED)] == 4


async def test_unlock_of_one_global_window_leaves_the_other(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state", global_="1 per day", global_listed="1 per day")
    await wrong_pins(lockout, CALLER, "alice", 1, CallerClass.LISTED)
    await wrong_pins(lockout, "447700900002", "bob", 1)
    cleared = await lockout.unlock(global_class=CallerClass.UNLISTED)
    assert [(s.layer, s.key) for s in cleared] == [(Layer.GLOBAL, "unlisted")]
    assert (await lockout.admit("447700900003", "bob")).refused_by is None
    listed = await lockout.admit("447700900004", "alice", CallerClass.LISTED)
    assert listed.refused_by is Layer.GLOBAL


async def test_a_freeze_outlives_a_restart_and_only_unlock_user_or_everything_ends_it(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    lockout = open_lockout(state_dir)
    assert await lockout.freeze("alice")
    assert not await lockout.freeze("alice")  # frozen already: nothing more recorded
    restarted = open_lockout(state_dir)  # a new daemon replays the journal
    assert (await restarted.admit(CALLER, "alice")).refused_by is Layer.FROZEN
    assert (await restarted.admit(CALLER, "bob")).refused_by is None  # bob is not frozen
    await restarted.unlock(caller=CALLER, global_class=CallerClass.UNLISTED)
    assert (await restarted.admit(CALLER, "alice")).refused_by is Layer.FROZEN
    [frozen] = [s for s in await restarted.status() if s.layer is Layer.FROZEN]
    assert frozen.locked
    assert time.time() - 60 < frozen.since_s <= time.time()
    assert frozen.describe().startswith("user alice: frozen by the duress PIN since ")
    cleared = await restarted.unlock(user="alice")
    assert Layer.FROZEN in {s.layer for s in cleared}
    assert (await restarted.admit(CALLER, "alice")).refused_by is None
    await restarted.freeze("alice")
    await restarted.unlock()
    assert await restarted.status() == []


async def test_a_frozen_users_attempts_are_refused_before_anything_is_counted(
    tmp_path: Path,
) -> None:
    lockout = open_lockout(tmp_path / "state")
    await lockout.freeze("alice")
    for _ in range(20):
        assert (await lockout.admit(CALLER, "alice")).refused_by is Layer.FROZEN
    assert {s.layer for s in await lockout.status()} == {Layer.FROZEN}
