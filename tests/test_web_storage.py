"""Webhooks when the directory cannot be saved: a full disk, a file the kernel will not replace.

Never a 500 or a traceback. A HOTP code is only read once its counter is saved, so a write
that fails reads no code, answers 503 and changes nothing; the PIN hash upgrade is not worth
failing a call for. The disks are real: a tiny tmpfs filled up, a file made immutable.
"""

import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import argon2
import pyotp
import pytest
from pytest_aiohttp import AiohttpClient

from tests.helpers import (
    CALLER,
    GITHUB_SEED,
    GMAIL_SEED,
    PIN,
    Client,
    Vonage,
    WebhookServer,
    spoken,
    write_config,
)
from totpd import config as config_module
from totpd.config import Config
from totpd.enrol import Enrolment
from totpd.enrol.commit import store_enrolments
from totpd.otp import Account, Kind
from totpd.roster import RosterFile
from totpd.secrets import open_store
from totpd.services import Services, open_services
from totpd.users import User

pytestmark = pytest.mark.root  # mount, chattr

BANK_SEED = GMAIL_SEED  # an HOTP account's seed
DISK_KIB = 512


def _first_hotp(counter: int) -> str:
    """How the caller hears the HOTP code at `counter`: digit by digit."""
    return " ".join(pyotp.HOTP(BANK_SEED).at(counter))


def _enrol(config: Config, accounts: tuple[str, ...], pin_hash: str) -> None:
    enrolments = [
        Enrolment(Account("github", "GitHub"), GITHUB_SEED),
        Enrolment(Account("bank", "Bank", kind=Kind.HOTP), BANK_SEED),
    ]
    state = config.paths.state_dir
    store_enrolments(enrolments, open_store(config), RosterFile(state))
    RosterFile(state).update(lambda r: r.with_user(User("alice", 1, pin_hash, accounts)))


def _pin_hash(config: Config, time_cost: int | None = None) -> str:
    pins = config.pins
    return argon2.PasswordHasher(
        time_cost=time_cost or pins.argon2_time_cost,
        memory_cost=pins.argon2_memory_kib,
        parallelism=pins.argon2_parallelism,
        type=argon2.Type.ID,
    ).hash(PIN)


def _fill(directory: Path) -> Path:
    """Write zeros into `directory` until its file system is full; the file that did it."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(bytes(64 << 10))
                out.flush()
        except OSError:
            pass
    return filler


def _rejected(services: Services, reason: str) -> float:
    value = services.metrics.registry.get_sample_value(
        "totpd_webhook_rejected_total", {"reason": reason}
    )
    return value or 0.0


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert [r for r in caplog.records if r.exc_info] == []
    assert "Traceback" not in caplog.text


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Config]:
    """The test config, its state directory on a tmpfs of its own (DISK_KIB)."""
    loaded = config_module.load(write_config(tmp_path))
    state = loaded.paths.state_dir
    state.mkdir(mode=0o700)
    size = f"size={DISK_KIB}k,mode=0700"
    subprocess.run(["mount", "-t", "tmpfs", "-o", size, "totpd-test", str(state)], check=True)
    try:
        yield loaded
    finally:
        subprocess.run(["umount", "--lazy", str(state)], check=True)


@pytest.fixture
def immutable(config: Config) -> Iterator[Path]:
    """directory.json, for the test to make immutable (chattr +i; tmp_path is not a tmpfs)."""
    roster = config.paths.state_dir / "directory.json"
    yield roster
    subprocess.run(["chattr", "-i", str(roster)], check=False)


async def _serve(aiohttp_client: AiohttpClient, config: Config) -> tuple[Services, Client]:
    services = open_services(config)
    return services, await aiohttp_client(WebhookServer(services))


async def test_a_full_disk_reads_no_hotp_code_and_changes_nothing(
    aiohttp_client: AiohttpClient, tiny_disk: Config, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_disk
    _enrol(config, ("github", "bank"), _pin_hash(config))
    services, client = await _serve(aiohttp_client, config)
    caller = Vonage(client)
    assert (await caller.answer())[0] == 200
    status, ncco = await caller.press("pin", PIN)
    assert status == 200
    assert "Bank" in spoken(ncco)
    journal = config.paths.state_dir / "lockout.journal"
    directory = config.paths.state_dir / "directory.json"
    before = (directory.read_bytes(), journal.read_bytes())
    filler = _fill(config.paths.state_dir)

    with caplog.at_level(logging.INFO):
        for _ in range(2):  # Vonage's retry of the 503, signed anew
            status, body = await caller.press("menu", "2")
            assert (status, body) == (503, {"error": "unavailable"})
    assert _first_hotp(0) not in json.dumps(body)
    assert (directory.read_bytes(), journal.read_bytes()) == before  # no PIN counted either
    assert _rejected(services, "unavailable") == 2
    assert "No space left on device" in caplog.text
    assert "code read" not in caplog.text
    _no_traceback(caplog)

    filler.unlink()  # room again: the code that was not read is the one read now
    status, ncco = await caller.press("menu", "2")
    assert status == 200
    assert _first_hotp(0) in spoken(ncco)
    assert RosterFile(config.paths.state_dir).current().accounts["bank"].counter == 1
    services.close()


async def test_a_counter_that_cannot_be_saved_after_the_pin_counts_no_failure(
    aiohttp_client: AiohttpClient,
    config: Config,
    immutable: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One account: the code is read right after the PIN, so Vonage's retry repeats the PIN.
    _enrol(config, ("bank",), _pin_hash(config))
    services, client = await _serve(aiohttp_client, config)
    caller = Vonage(client)
    assert (await caller.answer())[0] == 200
    before = immutable.read_bytes()
    subprocess.run(["chattr", "+i", str(immutable)], check=True)
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            status, body = await caller.press("pin", PIN)
            assert (status, body) == (503, {"error": "unavailable"})
    assert immutable.read_bytes() == before
    assert [s for s in await services.lockout.status() if s.failures] == []
    _no_traceback(caplog)
    services.close()


async def test_a_pin_hash_that_cannot_be_upgraded_still_lets_the_owner_in(
    aiohttp_client: AiohttpClient,
    config: Config,
    immutable: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    older = _pin_hash(config, time_cost=config.pins.argon2_time_cost + 1)  # wants a rehash
    _enrol(config, ("github", "bank"), older)
    services, client = await _serve(aiohttp_client, config)
    caller = Vonage(client)
    assert (await caller.answer(CALLER))[0] == 200
    before = immutable.read_bytes()
    subprocess.run(["chattr", "+i", str(immutable)], check=True)
    with caplog.at_level(logging.INFO):
        status, ncco = await caller.press("pin", PIN)
    assert status == 200
    assert "Bank" in spoken(ncco)  # the menu: the PIN was accepted
    assert immutable.read_bytes() == before
    assert "not upgraded" in caplog.text
    assert [s for s in await services.lockout.status() if s.failures] == []
    _no_traceback(caplog)
    services.close()
