"""The embedded lockout storage: an append-only journal that survives restarts and kill -9,
is shared with the CLI, errs towards a lockout when damaged, and compacts itself."""

import json
import time
from pathlib import Path

import pytest

from tests.helpers import CALLER, checked, open_lockout, wrong_pins
from totpd.errors import LockoutUnavailable
from totpd.lockout_windows import Layer, Window
from totpd.state.journal import COMPACT_AFTER_RECORDS, JOURNAL_FILE


async def test_failures_survive_a_restart(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    before = await wrong_pins(open_lockout(state_dir), CALLER, "alice", 3)
    assert checked(before) == 3
    after = open_lockout(state_dir)  # a new process: only the journal carries over
    assert (await after.admit(CALLER, "alice")).refused_by is Layer.CALLER
    assert checked(await wrong_pins(after, "447700900002", "alice", 5)) == 2  # user: 5 per hour


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
    await wrong_pins(daemon, CALLER, "alice", 3)
    assert (await daemon.admit(CALLER, "alice")).refused_by is Layer.CALLER
    cleared = await open_lockout(state_dir).unlock(caller=f"+{CALLER}")
    assert [(s.layer, s.key, s.failures) for s in cleared] == [(Layer.CALLER, CALLER, 3)]
    assert (await daemon.admit(CALLER, "alice")).refused_by is None


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
    key = lockout.storage_key(Window(Layer.CALLER, CALLER, None))
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
    await wrong_pins(lockout, CALLER, "alice", 2)
    lines = (state_dir / JOURNAL_FILE).read_text().splitlines()
    assert len(lines) == 6  # the two attempts, in the global, caller and user windows
    after = open_lockout(state_dir)
    assert checked(await wrong_pins(after, CALLER, "alice", 3)) == 1


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
    await wrong_pins(open_lockout(state_dir), CALLER, "alice", 1)
    assert (state_dir / JOURNAL_FILE).stat().st_mode & 0o077 == 0
