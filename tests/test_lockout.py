"""The lockout layers over the embedded journal: bounds, give-backs, restarts, damage, unlock."""

import asyncio
import json
import time
from pathlib import Path

import pytest

from totpd.config import LockoutConfig
from totpd.errors import LockoutUnavailable
from totpd.lockout import WITHHELD, Admission, Layer, Lockout, global_window
from totpd.state.journal import COMPACT_AFTER_RECORDS, JOURNAL_FILE, JournalWindows

CALLER = "447700900001"


def open_lockout(state_dir: Path, **limits: str) -> Lockout:
    """A Lockout over the journal in `state_dir`, as the daemon (or the CLI) opens it."""
    config = LockoutConfig(**limits)
    state_dir.mkdir(mode=0o700, exist_ok=True)
    return Lockout(config, JournalWindows(state_dir, *global_window(config)))


async def attempts(lockout: Lockout, caller: str, user: str, count: int) -> list[Admission]:
    """`count` wrong PINs in a row: admitted ones are failed, as the web layer does."""
    outcomes = []
    for _ in range(count):
        admission = await lockout.admit(caller, user)
        if admission.refused_by is None:
            await lockout.record_failure(admission)
        outcomes.append(admission)
    return outcomes


def checked(outcomes: list[Admission]) -> int:
    """How many of these attempts would have reached Argon2."""
    return sum(1 for a in outcomes if a.refused_by is None)


async def test_caller_layer_trips_after_its_limit(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state")
    outcomes = await attempts(lockout, CALLER, "alice", 5)
    assert checked(outcomes) == 3
    assert [a.refused_by for a in outcomes[3:]] == [Layer.CALLER, Layer.CALLER]
    assert (await lockout.admit("447700900002", "bob")).refused_by is None


async def test_rotating_callers_are_bounded_by_the_global_breaker(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state", per_user="1000 per hour")
    outcomes = []
    for index in range(300):
        outcomes += await attempts(lockout, f"4479{index:08d}", f"user{index % 4}", 1)
    assert checked(outcomes) == 10
    assert {a.refused_by for a in outcomes[10:]} == {Layer.GLOBAL}


async def test_withheld_callers_share_one_caller_window(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state", per_user="1000 per hour")
    outcomes = await attempts(lockout, "", "alice", 2) + await attempts(lockout, "", "bob", 2)
    assert checked(outcomes) == 3
    assert outcomes[-1].refused_by is Layer.CALLER
    [state] = [s for s in await lockout.status() if s.layer is Layer.CALLER]
    assert (state.key, state.locked) == (WITHHELD, True)


async def test_unknown_users_share_one_user_window(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state", per_caller="1000 per hour")
    outcomes = await attempts(lockout, CALLER, "", 7)
    assert checked(outcomes) == 5
    assert outcomes[-1].refused_by is Layer.USER


async def test_a_correct_pin_does_not_reset_the_global_breaker(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state", per_user="1000 per hour")
    for index in range(4):
        await attempts(lockout, f"44790000000{index}", "alice", 1)
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


async def test_failures_survive_a_restart(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    before = await attempts(open_lockout(state_dir), CALLER, "alice", 3)
    assert checked(before) == 3
    after = open_lockout(state_dir)  # a new process: only the journal carries over
    assert (await after.admit(CALLER, "alice")).refused_by is Layer.CALLER
    assert checked(await attempts(after, "447700900002", "alice", 5)) == 2  # user: 5 per hour


async def test_an_attempt_is_on_disk_before_its_pin_is_checked(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    daemon = open_lockout(state_dir, per_caller="1 per hour")
    admitted = await daemon.admit(CALLER, "alice")
    assert admitted.refused_by is None
    # Argon2 would run now. Another process (the daemon after kill -9) sees the attempt.
    assert (await open_lockout(state_dir).admit(CALLER, "alice")).refused_by is None
    reborn = open_lockout(state_dir, per_caller="1 per hour")
    assert (await reborn.admit(CALLER, "alice")).refused_by is Layer.CALLER


async def test_unlock_from_another_process_is_noticed(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    daemon = open_lockout(state_dir)
    await attempts(daemon, CALLER, "alice", 3)
    assert (await daemon.admit(CALLER, "alice")).refused_by is Layer.CALLER
    cleared = await open_lockout(state_dir).unlock(caller=f"+{CALLER}")
    assert [(s.layer, s.key, s.failures) for s in cleared] == [(Layer.CALLER, CALLER, 3)]
    assert (await daemon.admit(CALLER, "alice")).refused_by is None


async def test_unlock_of_one_caller_leaves_the_other_layers(tmp_path: Path) -> None:
    lockout = open_lockout(tmp_path / "state")
    await attempts(lockout, CALLER, "alice", 3)
    await attempts(lockout, "447700900002", "bob", 3)
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
    await attempts(lockout, CALLER, "alice", 3)
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


async def test_a_damaged_journal_trips_the_global_breaker(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    two_days_ago = {"op": "hit", "key": "LIMITER/caller/1/3/15/minute", "at": time.time() - 2e5}
    (state_dir / JOURNAL_FILE).write_bytes(
        json.dumps({**two_days_ago, "ttl": 900}).encode() + b"\n" + b"\x00garbage\n" * 10
    )
    lockout = open_lockout(state_dir)
    assert (await lockout.admit(CALLER, "alice")).refused_by is Layer.GLOBAL
    # The damage is pinned as real records: a second reader agrees, until an admin unlocks.
    assert (await open_lockout(state_dir).admit(CALLER, "alice")).refused_by is Layer.GLOBAL
    await lockout.unlock()
    assert (await lockout.admit(CALLER, "alice")).refused_by is None


async def test_a_torn_last_record_still_counts(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    lockout = open_lockout(state_dir, **{"global_": "1 per day"})
    admitted = await lockout.admit(CALLER, "alice")
    assert admitted.refused_by is None
    await lockout.unlock()
    with (state_dir / JOURNAL_FILE).open("ab") as journal:
        journal.write(b'{"op":"hit","key":"LIMITER/glo')  # kill -9 in the middle of a write
    await lockout.admit("447700900002", "bob")  # its first record terminates the torn one
    lines = (state_dir / JOURNAL_FILE).read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)  # well-formed again, damage pinned
    global_state = next(s for s in await lockout.status() if s.layer is Layer.GLOBAL)
    assert global_state.failures == 2  # bob's attempt and the torn one
    await lockout.unlock()
    with (state_dir / JOURNAL_FILE).open("ab") as journal:
        journal.write(b'{"op":"hit","key":"LIMITER/glo')
    reborn = open_lockout(state_dir, **{"global_": "1 per day"})
    assert (await reborn.admit("447700900003", "carol")).refused_by is None  # terminates it
    assert (await reborn.admit("447700900004", "dave")).refused_by is Layer.GLOBAL


async def test_a_clock_set_back_still_counts_failures_from_the_future(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    lockout = open_lockout(state_dir)
    key = lockout.limits[Layer.CALLER].key_for(Layer.CALLER, CALLER)
    future_s = time.time() + 365 * 86400
    with (state_dir / JOURNAL_FILE).open("w") as journal:
        for _ in range(3):
            journal.write(json.dumps({"op": "hit", "key": key, "at": future_s, "ttl": 900}) + "\n")
    assert (await lockout.admit(CALLER, "alice")).refused_by is Layer.CALLER
    caller = next(s for s in await lockout.status() if s.layer is Layer.CALLER)
    assert caller.until_s <= time.time() + 900  # one window from now, not a year


async def test_compaction_keeps_live_failures_and_drops_dead_ones(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    lockout = open_lockout(state_dir)
    dead = {"op": "hit", "key": "LIMITER/caller/1/3/15/minute", "at": time.time() - 1000}
    with (state_dir / JOURNAL_FILE).open("w") as journal:
        dead_records = 2 * COMPACT_AFTER_RECORDS
        journal.writelines(json.dumps({**dead, "ttl": 900}) + "\n" for _ in range(dead_records))
    await attempts(lockout, CALLER, "alice", 2)
    lines = (state_dir / JOURNAL_FILE).read_text().splitlines()
    assert len(lines) == 6  # the two attempts, in the global, caller and user windows
    after = open_lockout(state_dir)
    assert checked(await attempts(after, CALLER, "alice", 3)) == 1


async def test_no_pin_is_checked_when_the_journal_cannot_be_written(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / JOURNAL_FILE).mkdir()  # not a file: every read and write fails
    lockout = open_lockout(state_dir)
    with pytest.raises(LockoutUnavailable):
        await lockout.admit(CALLER, "alice")
    with pytest.raises(LockoutUnavailable):
        await lockout.status()


async def test_journal_is_private(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    await attempts(open_lockout(state_dir), CALLER, "alice", 1)
    assert (state_dir / JOURNAL_FILE).stat().st_mode & 0o077 == 0
