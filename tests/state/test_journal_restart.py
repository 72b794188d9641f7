"""The bound holds across kill -9: `totpd serve` as a process, its PIN checks scraped from
GET /metrics, its lockout journal the only thing that survives."""

import asyncio
import re
from pathlib import Path

from tests.helpers import PIN, WRONG_PIN, run_totpd
from tests.servers import Line, Replica, flood, lockout_config, new_session, place_call

BOUND = 10  # [lockout] global = "10 per day", the default; per_user raised so global binds


async def test_the_bound_holds_before_and_after_kill_9(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    replica = Replica(tmp_path / "daemon", lockout_config(per_user="1000 per hour"))
    replicas.append(replica)
    replica.start()
    async with new_session() as session:
        line = Line(session, replica.base_url)
        heard = await flood([line], calls=100)  # 300 wrong PINs from ~100 numbers
        assert len(heard) == 400
        first_life = replica.pins_checked()
        replica.kill()
        replica.start()
        await flood([line], calls=100)
        second_life = replica.pins_checked()
        [_, right] = await place_call(line, "447700900001", [PIN])
    assert (first_life, second_life) == (BOUND, 0)
    assert "code is" not in right.said  # still locked out after the crash
    status = run_totpd(replica.config_path, "status")
    assert f"global all: {BOUND}/{BOUND} failures, locked until" in status.stdout


async def test_kill_9_in_the_middle_of_a_flood_loses_no_checked_attempt(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    replica = Replica(tmp_path / "daemon", lockout_config(per_user="1000 per hour"))
    replicas.append(replica)
    replica.start()
    async with new_session() as session:
        line = Line(session, replica.base_url)
        attack = asyncio.ensure_future(flood([line], calls=60))
        while replica.pins_checked() < 4:
            await asyncio.sleep(0.01)
        replica.kill()  # requests in flight, Argon2 maybe running
        await asyncio.gather(attack, return_exceptions=True)
        checked_before_kill = len(re.findall(r"PIN wrong", replica.log()))
        status = run_totpd(replica.config_path, "status")
        on_record = int(re.search(r"global all: (\d+)/", status.stdout)[1])  # type: ignore[index]
        replica.start()
        await flood([line], calls=60)
        second_life = replica.pins_checked()
    assert checked_before_kill <= on_record  # every checked PIN was on disk first
    assert on_record + second_life <= BOUND
    assert on_record + second_life == BOUND  # and the budget is not lost either


async def test_unlock_while_the_daemon_runs(tmp_path: Path, replicas: list[Replica]) -> None:
    replica = Replica(tmp_path / "daemon", lockout_config())
    replicas.append(replica)
    replica.start()
    caller = "447700900001"
    async with new_session() as session:
        line = Line(session, replica.base_url)
        await place_call(line, caller, [WRONG_PIN] * 3)
        status = run_totpd(replica.config_path, "status")
        assert f"caller {caller}: 3/3 failures, locked until" in status.stdout
        [_, locked] = await place_call(line, caller, [PIN])
        assert "code is" not in locked.said
        unlock = run_totpd(replica.config_path, "unlock", "--caller", caller)
        assert unlock.returncode == 0, unlock.stderr
        assert f"cleared caller {caller}: 3/3 failures" in unlock.stdout
        [_, accepted] = await place_call(line, caller, [PIN])
        assert "code is" in accepted.said
        assert "user alice: 3/5 failures" in run_totpd(replica.config_path, "status").stdout
        everything = run_totpd(replica.config_path, "unlock")
        assert everything.returncode == 0, everything.stderr
        after = run_totpd(replica.config_path, "status")
    assert "no PIN failures on record; nothing is locked" in after.stdout
