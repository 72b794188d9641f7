"""The duress PIN over real HTTP: the caller hears a wrong PIN, the owner hears of it at once.

The webhook listener runs on aiohttp's test server and an ntfy endpoint on another (loopback);
calls are signed as Vonage signs them. A duress entry must be indistinguishable from a wrong
PIN on the line (every byte of every answer), counted as a failed attempt by the lockout,
counted in `totpd_duress_total`, and sent to the owner as an urgent notification. A user whose
duress PIN freezes the readout is refused (the right PIN too) until `totpd unlock --user`.
"""

import asyncio
import io
import json
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import generate_latest
from pytest_aiohttp import AiohttpServer

from tests.helpers import APPLICATION_ID, CALLED, PIN, run_totpd
from tests.notify.servers import TOKEN, Ntfy, notify_section, ntfy_url, write_urls
from tests.servers import Line, Opener, pin_failures
from totpd import vonage
from totpd.lockout_windows import Layer
from totpd.pins import PinHasher
from totpd.services import Services

DURESS_PIN = "73829164"
WRONG = "59183746"  # as long as the duress PIN: the bytes sent differ only in the digits
# No window fills here (a lockout would notify too).
ROOMY = {"per_caller": "100 per hour", "per_user": "100 per hour", "global": "100 per day"}

Call = Callable[..., Awaitable[list[bytes]]]


def set_duress(services: Services, user: str = "alice", freezes: bool = False) -> None:
    """Give `user` the duress PIN DURESS_PIN (as `user passwd --duress` stores it)."""
    duress_hash = services.pins.hash(DURESS_PIN)

    def change(roster):  # type: ignore[no-untyped-def]
        person = roster.users[user]
        return roster.with_user(replace(person, duress_hash=duress_hash, duress_freezes=freezes))

    services.roster.update(change)


def duress_total(services: Services) -> float:
    """totpd_duress_total, from the app's own registry."""
    return services.metrics.registry.get_sample_value("totpd_duress_total") or 0.0


@pytest.fixture
async def ntfy_server(aiohttp_server: AiohttpServer) -> tuple[Ntfy, TestServer]:
    """An ntfy publish endpoint on loopback that wants TOKEN."""
    ntfy = Ntfy(token=TOKEN)
    return ntfy, await aiohttp_server(ntfy.app())


Told = Callable[..., Awaitable[tuple[Services, Line]]]


@pytest.fixture
async def told(
    open_app: Opener, tmp_path: Path, ntfy_server: tuple[Ntfy, TestServer]
) -> AsyncIterator[Told]:
    """Start the webhook listener with notifications to the ntfy endpoint, its notifier
    started (and stopped at the end)."""
    started: list[Services] = []

    async def start(**limits: str) -> tuple[Services, Line]:
        urls = write_urls(tmp_path, ntfy_url(ntfy_server[1]))
        services, line = await open_app(extra=notify_section(urls), **{**ROOMY, **limits})
        await services.notifier.start()
        started.append(services)
        return services, line

    yield start
    for services in started:
        await services.notifier.stop(0.5)


def call_on(line: Line) -> Call:
    """A caller on `line`: one call from `caller`, each PIN in turn while the call asks for
    one; the raw bytes of every answer, the greeting first."""

    async def call(caller: str, *pins: str) -> list[bytes]:
        fields = {
            "from": caller,
            "to": CALLED,
            "uuid": str(uuidlib.uuid4()),
            "conversation_uuid": "C",
        }
        answers = [await raw(line, "/webhooks/answer", fields)]
        for pin in pins:
            typed = {"dtmf": {"digits": pin, "timed_out": False}}
            answers.append(await raw(line, "/webhooks/input/pin", {**fields, **typed}))
        await line.post("/webhooks/event", {**fields, "status": "completed"})
        return answers

    return call


async def raw(line: Line, path: str, fields: dict[str, Any]) -> bytes:
    """POST `fields`, signed as Vonage signs them; the answer's body, byte for byte."""
    body = json.dumps(fields).encode()
    token = vonage.sign_webhook(body, line.secret, time.time(), APPLICATION_ID)
    headers = {"Authorization": token, "Content-Type": "application/json"}
    async with line.session.post(line.base_url + path, data=body, headers=headers) as reply:
        assert reply.status == 200, await reply.text()
        return await reply.read()


async def eventually(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Wait until `condition()` holds; fail after `timeout_s`."""
    deadline_s = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline_s, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_duress_pin_is_heard_byte_for_byte_as_a_wrong_pin_and_the_owner_is_told(
    told: Told, ntfy_server: tuple[Ntfy, TestServer], totpd_log: io.StringIO
) -> None:
    services, line = await told()
    set_duress(services)
    call = call_on(line)
    wrong = await call("447700900101", WRONG, WRONG, WRONG)
    duress = await call("447700900102", DURESS_PIN, DURESS_PIN, DURESS_PIN)
    assert duress == wrong  # every answer, every byte: the greeting, two retries, the goodbye
    assert b"code is" not in b"".join(duress)

    assert duress_total(services) == 3
    assert pin_failures(services, layer="pin") == 6  # each one a wrong PIN to the lockout
    windows = {(s.layer, s.key): s.failures for s in await services.lockout.status()}
    assert windows[(Layer.CALLER, "447700900102")] == 3
    assert windows[(Layer.USER, "alice")] == 6

    ntfy, _ = ntfy_server
    await eventually(lambda: len(ntfy.published) == 3)
    message = ntfy.published[0]
    assert message.title == "URGENT totpd: duress PIN of alice entered"
    assert message.message.startswith("The duress PIN of user alice was entered by phone at ")
    assert "from +447700900102." in message.message
    assert "heard what a wrong PIN gets" in message.message
    assert "frozen" not in message.message  # alice's duress PIN does not freeze anything

    # The duress PIN never leaves a trace of itself: not in the log, a metric or a message.
    scraped = generate_latest(services.metrics.registry).decode()
    assert "totpd_duress_total 3.0" in scraped
    for text in (totpd_log.getvalue(), scraped, *(p.message + p.title for p in ntfy.published)):
        assert DURESS_PIN not in text
    assert "duress" in totpd_log.getvalue()  # the journal says what happened, not the digits


async def test_a_right_pin_is_still_accepted_while_a_duress_pin_is_set(open_app: Opener) -> None:
    services, line = await open_app(**ROOMY)
    set_duress(services)
    [_, heard] = await call_on(line)("447700900103", PIN)
    assert b"code is" in heard
    assert duress_total(services) == 0


async def test_a_duress_pin_that_freezes_refuses_the_right_pin_until_unlock_user(
    told: Told, tmp_path: Path, ntfy_server: tuple[Ntfy, TestServer]
) -> None:
    services, line = await told()
    set_duress(services, freezes=True)
    call = call_on(line)
    [_, wrong] = await call("447700900104", WRONG)
    [_, duress] = await call("447700900105", DURESS_PIN)
    [_, frozen] = await call("447700900106", PIN)  # the right PIN, from another number
    assert duress == wrong
    assert frozen == wrong  # refused, and it sounds like any wrong PIN
    assert pin_failures(services, layer="frozen") == 1

    ntfy, _ = ntfy_server
    await eventually(lambda: len(ntfy.published) == 1)
    assert "alice's codes are frozen until an admin runs `totpd unlock --user alice`" in (
        ntfy.published[0].message
    )
    shown = [s.describe() for s in await services.lockout.status()]
    assert any(line.startswith("user alice: frozen by the duress PIN since ") for line in shown)

    config_path = tmp_path / "totpd.toml"
    assert "alice: frozen" in run_totpd(config_path, "status").stdout
    cleared = run_totpd(config_path, "unlock", "--user", "alice")
    assert cleared.returncode == 0, cleared.stderr
    assert "cleared user alice: frozen by the duress PIN since " in cleared.stdout
    assert "alice's codes can be read again" in cleared.stdout
    [_, unfrozen] = await call("447700900106", PIN)
    assert b"code is" in unfrozen


async def test_unlock_of_a_caller_or_a_class_leaves_the_freeze(
    open_app: Opener, tmp_path: Path
) -> None:
    services, line = await open_app(**ROOMY)
    set_duress(services, freezes=True)
    await call_on(line)("447700900107", DURESS_PIN)
    config_path = tmp_path / "totpd.toml"
    run_totpd(config_path, "unlock", "--caller", "+447700900107", "--global", "unlisted")
    [_, still] = await call_on(line)("447700900108", PIN)
    assert b"code is" not in still


async def test_a_frozen_user_can_be_unfrozen_by_unlocking_everything(
    open_app: Opener, tmp_path: Path
) -> None:
    services, line = await open_app(**ROOMY)
    set_duress(services, freezes=True)
    await call_on(line)("447700900109", DURESS_PIN)
    cleared = run_totpd(tmp_path / "totpd.toml", "unlock")
    assert "alice: frozen" in cleared.stdout
    [_, heard] = await call_on(line)("447700900110", PIN)
    assert b"code is" in heard


async def test_every_pin_entry_costs_the_same_two_argon2_verifications(
    open_app: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted, not timed: whatever the PIN, the user or the refusal, two verifications."""
    services, line = await open_app(**{**ROOMY, "per_caller": "1 per hour"})
    set_duress(services, freezes=False)
    verified: list[bool] = []
    original = PinHasher.verify_sync

    def counting(self: PinHasher, pin_hash: str | None, pin: str, rehash: bool = True) -> Any:
        verified.append(pin_hash is None)
        return original(self, pin_hash, pin, rehash)

    monkeypatch.setattr(PinHasher, "verify_sync", counting)
    call = call_on(line)
    costs = {}
    for kind, caller, pin in [
        ("wrong", "447700900201", WRONG),
        ("duress", "447700900202", DURESS_PIN),
        ("right", "447700900203", PIN),
        ("locked caller", "447700900201", PIN),  # its window (1 per hour) is full
        ("duress that freezes", "447700900204", DURESS_PIN),
        ("right, frozen", "447700900205", PIN),
    ]:
        if kind == "duress that freezes":
            set_duress(services, freezes=True)
        verified.clear()
        await call(caller, pin)
        costs[kind] = len(verified)
    assert set(costs.values()) == {2}, costs
