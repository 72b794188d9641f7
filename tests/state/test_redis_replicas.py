"""Two `totpd serve` processes behind one (imaginary) load balancer, sharing one redis-server:
they act as one daemon. PIN checks are scraped from each replica's GET /metrics."""

from pathlib import Path

import pytest

from tests.helpers import CALLER, PIN, WRONG_PIN, run_totpd
from tests.servers import Line, RedisServer, Replica, flood, lockout_config, new_session, place_call

pytestmark = pytest.mark.redis

BOUND = 10  # [lockout] global = "10 per day", the default
DURESS_PIN = "73829164"


def start_two(tmp_path: Path, replicas: list[Replica], redis_url: str, **limits: str) -> None:
    """Start replicas A and B on the same Redis."""
    for name in ("a", "b"):
        replica = Replica(tmp_path / name, lockout_config(redis_url, **limits))
        replicas.append(replica)
        replica.start()


async def test_two_replicas_share_the_bound(
    tmp_path: Path, redis_server: RedisServer, replicas: list[Replica]
) -> None:
    start_two(tmp_path, replicas, redis_server.url, per_user="1000 per hour")
    a, b = replicas
    async with new_session() as session:
        lines = [Line(session, a.base_url), Line(session, b.base_url)]
        for line in lines:  # one call each first, so that both replicas surely check PINs
            await place_call(line, "447700900002", [WRONG_PIN])
        heard = await flood(lines, calls=200)  # 600 wrong PINs, alternating replicas
        assert len(heard) == 800
        by_a, by_b = a.pins_checked(), b.pins_checked()
        a.kill()  # a crash of one replica gives nobody a fresh window
        a.start()
        await flood(lines, calls=60)
        after_restart = a.pins_checked() + b.pins_checked() - by_b
    assert by_a + by_b == BOUND
    assert by_a > 0
    assert by_b > 0  # both replicas checked PINs, from one shared budget
    assert after_restart == 0
    status = run_totpd(a.config_path, "status")
    assert f"global (unlisted callers): {BOUND}/{BOUND} failures, locked until" in status.stdout


async def test_a_call_moves_between_replicas_and_replays_are_shared(
    tmp_path: Path, redis_server: RedisServer, replicas: list[Replica]
) -> None:
    start_two(tmp_path, replicas, redis_server.url)
    a, b = replicas
    async with new_session() as session:
        at_a, at_b = Line(session, a.base_url), Line(session, b.base_url)
        fields = {"from": CALLER, "to": "447700900999", "uuid": "call-1"}
        answered = await at_a.post("/webhooks/answer", fields)
        assert answered.next_step() == "pin"
        pin = {**fields, "dtmf": {"digits": PIN, "timed_out": False}}
        read = await at_b.post("/webhooks/input/pin", pin)
        assert "code is" in read.said
        path, body, token = at_b.sent[-1]
        replayed_jwt = await at_a.send(path, body, token)
        assert replayed_jwt.status == 401  # the jti was seen by B
        replayed_step = await at_a.post("/webhooks/input/pin", pin)
        assert replayed_step.status == 409  # the call moved on: no second code


async def test_unlock_and_status_against_redis(
    tmp_path: Path, redis_server: RedisServer, replicas: list[Replica]
) -> None:
    start_two(tmp_path, replicas, redis_server.url)
    a, b = replicas
    async with new_session() as session:
        await place_call(Line(session, a.base_url), CALLER, [WRONG_PIN] * 3)
        [_, locked] = await place_call(Line(session, b.base_url), CALLER, [PIN])
        assert "code is" not in locked.said
        status = run_totpd(b.config_path, "status")
        assert f"caller {CALLER}: 3/3 failures, locked until" in status.stdout
        unlock = run_totpd(a.config_path, "unlock", "--caller", CALLER)
        assert unlock.returncode == 0, unlock.stderr
        [_, accepted] = await place_call(Line(session, b.base_url), CALLER, [PIN])
        assert "code is" in accepted.said
    assert b.metric("totpd_pin_failures_total", layer="caller") == 1


async def test_redis_going_away_mid_call_checks_no_pin_then_recovers(
    tmp_path: Path, redis_server: RedisServer, replicas: list[Replica]
) -> None:
    start_two(tmp_path, replicas, redis_server.url)
    a, _ = replicas
    async with new_session() as session:
        line = Line(session, a.base_url)
        fields = {"from": CALLER, "to": "447700900999", "uuid": "call-1"}
        answered = await line.post("/webhooks/answer", fields)
        assert answered.said.endswith("Sorry, something went wrong. Goodbye.")  # safety net
        redis_server.stop()
        pin = {**fields, "dtmf": {"digits": PIN, "timed_out": False}}
        refused = await line.post("/webhooks/input/pin", pin)
        assert refused.status == 503  # Vonage plays the rest of the NCCO: the safety net
        assert "code is" not in refused.said
        assert "shared state (Redis)" in a.log()  # the journal says why
        redis_server.start()
        assert a.pins_checked() == 0  # (scraped once Redis is back: the scrape counts calls)
        [_, accepted] = await place_call(line, CALLER, [PIN])
        assert "code is" in accepted.said


async def test_a_duress_pin_at_one_replica_freezes_the_user_at_every_replica(
    tmp_path: Path, redis_server: RedisServer, replicas: list[Replica]
) -> None:
    start_two(tmp_path, replicas, redis_server.url)
    a, b = replicas
    for replica in replicas:  # the admin sets it in each replica's directory
        done = run_totpd(
            replica.config_path, "user", "passwd", "alice", "--duress", "--freeze", stdin=DURESS_PIN
        )
        assert done.returncode == 0, done.stderr
    async with new_session() as session:
        [_, duress] = await place_call(Line(session, a.base_url), CALLER, [DURESS_PIN])
        assert "code is" not in duress.said
        [_, frozen] = await place_call(Line(session, b.base_url), "447700900002", [PIN])
        assert "code is" not in frozen.said
        assert "alice: frozen by the duress PIN" in run_totpd(b.config_path, "status").stdout
        assert run_totpd(b.config_path, "unlock", "--user", "alice").returncode == 0
        [_, accepted] = await place_call(Line(session, a.base_url), "447700900003", [PIN])
        assert "code is" in accepted.said
    assert a.metric("totpd_duress_total") == 1
    assert b.metric("totpd_pin_failures_total", layer="frozen") == 1
