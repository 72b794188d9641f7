"""The embedded replay cache survives a restart: a captured call replayed after kill -9 reads
no code and moves no HOTP counter. Then the file itself: expiry, rotation, damage."""

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import CALLER, GITHUB_SEED, PIN
from tests.servers import Line, Replica, new_session, place_call
from totpd.enrol import Enrolment
from totpd.enrol.commit import store_enrolments
from totpd.errors import StateUnavailable
from totpd.otp import Account, Kind
from totpd.roster import RosterFile
from totpd.secrets import open_store
from totpd.state.replays import REPLAYS_FILE, ReplayFile

# The replays come a few seconds after the originals: with the default 5 s clock limit a slow
# restart would make them clock goodbyes, and this is about the replay cache.
PATIENT_CLOCK = "max_clock_disagreement_s = 60"


async def replay_after_kill_9(replica: Replica) -> tuple[list[int], str]:
    """Place a whole call, kill -9 the daemon, start it again, and send the call's answer and
    PIN webhooks again, byte for byte: their statuses, and what the caller would hear."""
    replica.start()
    async with new_session() as session:
        line = Line(session, replica.base_url)
        heard = await place_call(line, CALLER, [PIN])
        assert "code is" in heard[1].said
        replica.kill()
        replica.start()
        replayed = [await line.send(*sent) for sent in line.sent[:2]]
    return [h.status for h in replayed], " ".join(h.said for h in replayed)


async def test_a_call_replayed_after_kill_9_reads_no_code(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    replica = Replica(tmp_path / "daemon", vonage_extra=PATIENT_CLOCK)
    replicas.append(replica)
    statuses, said = await replay_after_kill_9(replica)
    assert statuses == [401, 401]
    assert "code is" not in said
    assert replica.metric("totpd_webhook_rejected_total", reason="replayed") == 2


async def test_a_hotp_call_replayed_after_kill_9_moves_no_counter(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    replica = Replica(tmp_path / "daemon", vonage_extra=PATIENT_CLOCK)
    replicas.append(replica)
    roster = RosterFile(replica.config.paths.state_dir)
    door = Enrolment(Account("door", "Door", kind=Kind.HOTP), GITHUB_SEED)
    store_enrolments([door], open_store(replica.config), roster)
    roster.update(lambda r: r.with_user(replace(r.users["alice"], accounts=("door",))))

    statuses, said = await replay_after_kill_9(replica)
    assert statuses == [401, 401]
    assert "code is" not in said
    assert roster.current().accounts["door"].counter == 1  # the genuine call's read-out only


# The file ----------------------------------------------------------------------------------
NOW_S = 1_800_000_000.0


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now_s = NOW_S

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> Clock:
    """A clock at NOW_S."""
    return Clock()


async def test_a_jti_is_refused_until_its_window_passes(tmp_path: Path, clock: Clock) -> None:
    replays = ReplayFile(tmp_path, clock)
    assert await replays.first_use("a", 90)
    assert not await replays.first_use("a", 90)
    clock.now_s += 89
    assert not await replays.first_use("a", 90)
    clock.now_s += 2
    assert await replays.first_use("a", 90)
    replays.close()


async def test_a_reopened_file_remembers_what_is_still_in_its_window(
    tmp_path: Path, clock: Clock
) -> None:
    first = ReplayFile(tmp_path, clock)
    assert await first.first_use("old", 90)
    clock.now_s += 60
    assert await first.first_use("new", 90)
    # No close(): a crash. What was written is in the kernel's cache, hence in the file.
    clock.now_s += 40  # "old" has left its window, "new" has not
    second = ReplayFile(tmp_path, clock)
    assert await second.first_use("old", 90)
    assert not await second.first_use("new", 90)
    second.close()
    first.close()


async def test_the_file_rotates_and_forgets_only_what_expired(tmp_path: Path, clock: Clock) -> None:
    replays = ReplayFile(tmp_path, clock)
    for n in range(1000):  # a jti every 0.5 s for 500 s: several rotations
        assert await replays.first_use(f"jti-{n}", 90)
        clock.now_s += 0.5
    replays.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [REPLAYS_FILE, f"{REPLAYS_FILE}.old"]
    lines = sum(len(p.read_bytes().splitlines()) for p in tmp_path.iterdir())
    assert lines <= 2 * 90 / 0.5 + 1  # two windows' worth at most, not 1,000
    reopened = ReplayFile(tmp_path, clock)
    for n in range(1000):  # the last 90 s are remembered, the rest has expired
        remembered = not await reopened.first_use(f"jti-{n}", 90)
        assert remembered == (NOW_S + n * 0.5 + 90 > clock.now_s), n
    reopened.close()


async def test_damaged_lines_are_skipped_and_the_rest_is_read(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / REPLAYS_FILE).write_bytes(
        json.dumps([NOW_S + 60, "kept"]).encode()
        + b"\n\x00\x00garbage\n[1, 2, 3]\n"
        + json.dumps([NOW_S + 60, "torn"]).encode()[:-4]  # a power cut mid-line
    )
    replays = ReplayFile(tmp_path, clock)
    assert not await replays.first_use("kept", 90)
    assert await replays.first_use("torn", 90)
    assert "3 unreadable" in caplog.text
    replays.close()
    reopened = ReplayFile(tmp_path, clock)  # what came after the torn line is read whole
    assert not await reopened.first_use("torn", 90)
    reopened.close()


async def test_a_jti_with_a_newline_cannot_forge_a_line(tmp_path: Path, clock: Clock) -> None:
    replays = ReplayFile(tmp_path, clock)
    assert await replays.first_use('x"]\n[99999999999, "forged', 90)
    replays.close()
    reopened = ReplayFile(tmp_path, clock)
    assert await reopened.first_use("forged", 90)
    assert not await reopened.first_use('x"]\n[99999999999, "forged', 90)
    reopened.close()


@pytest.mark.parametrize("name", [REPLAYS_FILE, f"{REPLAYS_FILE}.old"])
@pytest.mark.parametrize("planted", ["link", "fifo"])
async def test_a_planted_link_or_fifo_is_refused_not_followed(
    tmp_path: Path, clock: Clock, name: str, planted: str
) -> None:
    state, elsewhere = tmp_path / "state", tmp_path / "elsewhere"
    state.mkdir()
    elsewhere.write_text("someone else's file\n")
    if planted == "link":
        (state / name).symlink_to(elsewhere)
    else:
        os.mkfifo(state / name)  # a read would block the daemon's start for ever
    replays = ReplayFile(state, clock)
    with pytest.raises(StateUnavailable):
        await replays.first_use("a", 90)
    assert elsewhere.read_text() == "someone else's file\n"
