"""The lockout policy over the embedded journal: layers, bounds, give-backs, status, unlock."""

import asyncio
import json
import time
from pathlib import Path

from tests.helpers import CALLER, checked, open_lockout, wrong_pins
from totpd.lockout import WITHHELD, Layer
from totpd.state.journal import JOURNAL_FILE


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
        (Layer.GLOBAL, "all"): 6,
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
    key = lockout.limits[Layer.CALLER].key_for(Layer.CALLER, CALLER)
    old_s = time.time() - 901
    with (state_dir / JOURNAL_FILE).open("w") as journal:
        for _ in range(3):
            journal.write(json.dumps({"op": "hit", "key": key, "at": old_s, "ttl": 900}) + "\n")
    assert (await lockout.admit(CALLER, "alice")).refused_by is None
