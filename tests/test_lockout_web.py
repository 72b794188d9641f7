"""Brute force over real HTTP against the webhook app (aiohttp's test server, embedded state).

What reached Argon2 is read from the app's own metric, totpd_pin_failures_total{layer="pin"},
which the PIN step increments after each wrong PIN that Argon2 verified.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.helpers import CALLER, PIN, WRONG_PIN, WebhookServer, enrol_demo, write_config
from tests.servers import Line, flood, lockout_config, new_session, place_call
from totpd import config as config_module
from totpd.services import Services, open_services
from totpd.state.journal import JOURNAL_FILE

Opener = Callable[..., Awaitable[tuple[Services, Line]]]


@pytest.fixture
async def open_app(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[tuple[Services, Line]]]]:
    """Start the webhook listener with a given `[lockout]` section; returns (services, line)."""
    opened: list[Services] = []
    servers: list[WebhookServer] = []
    session = new_session()

    async def start(**limits: str) -> tuple[Services, Line]:
        path = write_config(tmp_path, lockout_config(**limits))
        config = config_module.load(path)
        config.paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not (config.paths.state_dir / "directory.json").exists():
            enrol_demo(config, ("github",))
        services = open_services(config)
        opened.append(services)
        server = WebhookServer(services)
        servers.append(server)
        await server.start_server()
        return services, Line(session, str(server.make_url("")).rstrip("/"))

    yield start
    await session.close()
    for server in servers:
        await server.close()
    for services in opened:
        services.close()


def pins_checked(services: Services) -> float:
    """Wrong PINs Argon2 verified, from the app's metrics registry."""
    value = services.metrics.registry.get_sample_value("totpd_pin_failures_total", {"layer": "pin"})
    return value or 0.0


def refused_by(services: Services, layer: str) -> float:
    """PIN entries a lockout layer refused without checking them."""
    value = services.metrics.registry.get_sample_value("totpd_pin_failures_total", {"layer": layer})
    return value or 0.0


async def test_flood_of_wrong_pins_from_rotating_numbers_is_bounded(open_app: Opener) -> None:
    services, line = await open_app(per_user="1000 per hour")
    heard = await flood([line], calls=150)  # 3 wrong PINs a call, 1 in 7 calls withheld
    assert len(heard) - 150 == 450  # every PIN entry was answered (and refused)
    assert all(h.status == 200 and "code is" not in h.said for h in heard)
    assert pins_checked(services) == 10  # "10 per day": the global breaker
    assert refused_by(services, "global") + refused_by(services, "caller") > 300
    gauge = services.metrics.registry.get_sample_value("totpd_lockouts_active", {"layer": "global"})
    assert gauge == 1


async def test_a_locked_caller_hears_the_same_refusal_and_no_pin_is_checked(
    open_app: Opener,
) -> None:
    services, line = await open_app()
    [_, wrong, *_] = await place_call(line, CALLER, [WRONG_PIN, WRONG_PIN, WRONG_PIN])
    assert pins_checked(services) == 3
    [_, locked] = await place_call(line, CALLER, [PIN])  # the right PIN, while locked out
    assert locked.said == wrong.said  # the caller cannot tell a lockout from a wrong PIN
    assert "code is" not in locked.said
    assert pins_checked(services) == 3
    assert refused_by(services, "caller") == 1
    [_, other] = await place_call(line, "447700900002", [PIN])  # another caller: not locked
    assert "code is" in other.said


async def test_a_correct_pin_does_not_reset_the_global_breaker(open_app: Opener) -> None:
    services, line = await open_app(per_user="1000 per hour")
    for index in range(9):
        await place_call(line, f"44790000000{index}", [WRONG_PIN])
    [_, right] = await place_call(line, CALLER, [PIN])
    assert "code is" in right.said
    await place_call(line, "447911111111", [WRONG_PIN])  # the 10th failure: breaker trips
    [_, after] = await place_call(line, CALLER, [PIN])
    assert "code is" not in after.said
    assert pins_checked(services) == 10
    assert refused_by(services, "global") == 1


async def test_replayed_failures_are_refused_before_any_pin_check(open_app: Opener) -> None:
    services, line = await open_app()
    await place_call(line, CALLER, [WRONG_PIN])
    path, body, token = next(s for s in line.sent if s[0] == "/webhooks/input/pin")
    assert pins_checked(services) == 1
    replayed = await line.send(path, body, token)  # the very same signed request
    assert replayed.status == 401
    resigned = await line.post(path, json.loads(body))  # a fresh JWT, for the ended call
    assert resigned.status == 409
    assert pins_checked(services) == 1


async def test_no_pin_is_checked_while_the_journal_cannot_be_written(
    open_app: Opener, tmp_path: Path
) -> None:
    services, line = await open_app()
    journal = services.config.paths.state_dir / JOURNAL_FILE
    journal.unlink(missing_ok=True)
    journal.mkdir()  # every read and write of the journal now fails
    [_, refused] = await place_call(line, CALLER, [PIN])
    assert refused.status == 200
    assert "code is" not in refused.said
    assert pins_checked(services) == 0
    assert refused_by(services, "unavailable") == 1
    journal.rmdir()  # storage back: the next call works
    [_, accepted] = await place_call(line, CALLER, [PIN])
    assert "code is" in accepted.said


async def test_unlock_from_the_cli_reaches_the_running_app(open_app: Opener) -> None:
    from totpd.services import clear_lockouts, read_lockouts

    services, line = await open_app()
    await place_call(line, CALLER, [WRONG_PIN] * 3)
    # The CLI is another process with its own event loop; a thread stands in for it here.
    states = await asyncio.to_thread(read_lockouts, services.config)
    [locked] = [s for s in states if s.locked]
    assert (locked.layer, locked.key) == ("caller", CALLER)
    cleared = await asyncio.to_thread(clear_lockouts, services.config, CALLER)
    assert [s.key for s in cleared] == [CALLER]
    [_, accepted] = await place_call(line, CALLER, [PIN])
    assert "code is" in accepted.said
