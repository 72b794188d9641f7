"""A clock totpd cannot trust reads no code: a validly signed webhook whose `iat` and the local
clock disagree by more than `vonage.max_clock_disagreement_s`, either way, hears the clock
goodbye and changes nothing. The kernel's own sync flag is reported, never obeyed."""

import json
import logging
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    APPLICATION_ID,
    CALLER,
    PIN,
    SIGNATURE_SECRET,
    Client,
    Vonage,
    enrol_demo,
    free_port,
    run_totpd,
    spoken,
    wait_for_port,
    write_config,
)
from tests.servers import Line, Replica, new_session, sample
from totpd import config as config_module
from totpd import vonage
from totpd.clock import QUEUE_DRAIN_S, StartupWait
from totpd.services import Services

SKEWS_S = [-3600, -30, -6, 6, 30, 3600]  # local clock minus iat: behind is negative


def skewed(caller: Vonage, skew_s: float) -> Vonage:
    """A Vonage whose clock is `skew_s` behind ours (ahead when negative): it signs with
    iat = now - skew_s."""

    class Skewed(Vonage):
        def token(self, body: bytes, **overrides: Any) -> str:
            return super().token(body, now=time.time() - skew_s, **overrides)

    return Skewed(caller.client, secret=caller.secret.decode())


def clock_refusals(services: Services) -> float:
    """totpd_clock_refusals_total."""
    return services.metrics.registry.get_sample_value("totpd_clock_refusals_total") or 0.0


def assert_clock_goodbye(status: int, ncco: Any) -> None:
    """The caller hears one sentence about the clock, and the call ends there."""
    assert status == 200
    assert [action["action"] for action in ncco] == ["talk"], ncco
    said = spoken(ncco)
    assert "clock" in said
    assert "code is" not in said


@pytest.mark.parametrize("skew_s", SKEWS_S)
async def test_an_answer_signed_by_a_clock_that_disagrees_hears_the_clock_goodbye(
    caller: Vonage, services: Services, skew_s: int
) -> None:
    status, ncco = await skewed(caller, skew_s).answer()
    assert_clock_goodbye(status, ncco)
    assert await services.calls.count() == 0  # no call begins
    assert clock_refusals(services) == 1
    skew = services.metrics.registry.get_sample_value("totpd_clock_skew_seconds")
    assert skew == pytest.approx(skew_s, abs=2)


@pytest.mark.parametrize("skew_s", [-3600, 3600, -7, 7])
async def test_a_pin_step_signed_by_a_clock_that_disagrees_checks_no_pin(
    caller: Vonage, services: Services, skew_s: int
) -> None:
    assert (await caller.answer())[0] == 200
    status, ncco = await skewed(caller, skew_s).press("pin", PIN)
    assert_clock_goodbye(status, ncco)
    assert services.metrics.registry.get_sample_value("totpd_codes_read_total") is None
    assert await services.lockout.status() == []  # not even counted as an attempt
    # Nothing moved: the call still waits for its PIN, and a trustworthy webhook gets a code.
    status, ncco = await caller.press("pin", PIN)
    assert "code is" in spoken(ncco)


async def test_an_event_signed_by_a_clock_that_disagrees_changes_nothing(
    caller: Vonage, services: Services
) -> None:
    await caller.answer()
    status, _ = await skewed(caller, 600).post(
        "/webhooks/event", {"uuid": caller.uuid, "status": "completed"}
    )
    assert status == 204
    assert await services.calls.count() == 1  # the call was not ended by it
    assert clock_refusals(services) == 1


@pytest.mark.parametrize("skew_s", [-4, 0, 4])
async def test_a_clock_within_the_limit_is_trusted(
    caller: Vonage, services: Services, skew_s: int
) -> None:
    assert (await skewed(caller, skew_s).answer())[0] == 200
    _, ncco = await skewed(caller, skew_s).press("pin", PIN)
    assert "code is" in spoken(ncco)
    assert clock_refusals(services) == 0


@pytest.mark.parametrize(("skew_s", "trusted"), [(9, True), (-9, False)])
async def test_a_webhook_that_waited_for_the_start_is_not_held_against_the_clock(
    caller: Vonage, services: Services, skew_s: int, trusted: bool
) -> None:
    """The daemon took 8 s to start and serves since a moment ago: a webhook that looks 9 s
    old (the limit is 5 s) may have waited that long in the socket's queue. A clock 9 s
    behind is never excused."""
    now_s = time.monotonic()
    services.startup = StartupWait(began_s=now_s - 8, serving_s=now_s - 1)
    status, ncco = await skewed(caller, skew_s).answer()
    if trusted:
        assert (status, "PIN" in spoken(ncco)) == (200, True), ncco
        assert clock_refusals(services) == 0
    else:
        assert_clock_goodbye(status, ncco)


async def test_once_the_queue_drained_a_clock_ahead_is_refused_again(
    caller: Vonage, services: Services
) -> None:
    serving_s = time.monotonic() - QUEUE_DRAIN_S - 1
    services.startup = StartupWait(began_s=serving_s - 8, serving_s=serving_s)
    assert_clock_goodbye(*await skewed(caller, 9).answer())


def slow_start_of(tmp_path: Path, listen_port: int) -> list[str]:
    """The command line of `totpd serve` on a new config (alice enrolled, the clock allowed
    1 s off, webhooks on `listen_port`), started 2 s after its process began, as a slow start
    with a TPM2 or an SD card is (exec keeps the process, so $LISTEN_PID still matches)."""
    config_path = write_config(
        tmp_path,
        listen=f"127.0.0.1:{listen_port}",
        metrics=f"127.0.0.1:{free_port()}",
        vonage_extra="max_clock_disagreement_s = 1",
    )
    config = config_module.load(config_path)
    config.paths.state_dir.mkdir(mode=0o700)
    enrol_demo(config)
    serve = [sys.executable, "-m", "totpd", "--config", str(config_path), "serve"]
    return ["sh", "-c", 'sleep 2 && exec "$@"', "sh", *serve]


def test_the_webhook_that_starts_the_daemon_is_answered(tmp_path: Path) -> None:
    """Socket activation, as systemd does it: the first webhook starts the daemon and waits in
    the socket's queue meanwhile (here at least 2 s: a slow start, with a TPM2 or an SD card).
    Signed before it waited, it looks that much older than the 1 s the clock may be off, and
    is answered all the same."""
    activate = shutil.which("systemd-socket-activate")
    assert activate, "systemd-socket-activate (package systemd) is needed"
    port = free_port()
    environment = [f"--setenv={name}" for name in (config_module.SIGNATURE_SECRET_ENV, "PATH")]
    listen = [activate, "-l", f"127.0.0.1:{port}", "--fdname=webhooks", *environment]
    with (tmp_path / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(
            [*listen, *slow_start_of(tmp_path, free_port())],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={config_module.SIGNATURE_SECRET_ENV: SIGNATURE_SECRET, "PATH": "/usr/bin:/bin"},
        )
    try:
        body = json.dumps({"from": CALLER, "to": "447700900999", "uuid": "queued"}).encode()
        deadline_s = time.monotonic() + 10
        while True:  # until systemd-socket-activate listens (it starts nothing before)
            token = vonage.sign_webhook(
                body, SIGNATURE_SECRET.encode(), time.time(), APPLICATION_ID
            )
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/webhooks/answer",
                data=body,
                headers={"Authorization": token, "Content-Type": "application/json"},
            )
            sent_s = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                    ncco = json.loads(response.read())
                break
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, ConnectionRefusedError):
                    raise
                assert time.monotonic() < deadline_s, "systemd-socket-activate never listened"
                time.sleep(0.05)
        waited_s = time.monotonic() - sent_s
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    log_text = (tmp_path / "daemon.log").read_text()
    assert waited_s > 2, f"answered after {waited_s:.1f} s: the daemon was not started by it"
    assert "PIN" in spoken(ncco), f"{ncco}\n{log_text}"
    assert "clock untrusted" not in log_text


async def test_a_forged_token_with_a_wrong_clock_is_still_a_401(
    caller: Vonage, client: Client, services: Services
) -> None:
    forger = skewed(Vonage(client, secret="a-guessed-secret-of-32-bytes-or-more"), 3600)
    status, body = await forger.answer()
    assert (status, body) == (401, {"error": "bad_signature"})
    assert clock_refusals(services) == 0


async def test_a_stale_token_for_another_body_is_still_a_401(
    caller: Vonage, client: Client
) -> None:
    signed = json.dumps({"uuid": caller.uuid, "dtmf": {"digits": "000000"}}).encode()
    sent = json.dumps({"uuid": caller.uuid, "dtmf": {"digits": PIN}}).encode()
    token = caller.token(signed, now=time.time() - 3600)
    response = await client.post("/webhooks/input/pin", data=sent, headers={"Authorization": token})
    assert (response.status, await response.json()) == (401, {"error": "bad_payload_hash"})


async def test_the_journal_says_why_once_per_interval(
    caller: Vonage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="totpd")
    for n in range(20):
        caller.uuid = f"call-{n}"
        await skewed(caller, 120).answer()
    lines = [
        r for r in caplog.records if getattr(r, "fields", {}).get("OUTCOME") == "clock_untrusted"
    ]
    assert len(lines) == 1
    assert "clock" in lines[0].getMessage()
    assert re.search(r"iat is \+12[01] s", lines[0].getMessage())  # iat is whole seconds


# Against `totpd serve` --------------------------------------------------------------------
async def test_a_daemon_refuses_codes_to_a_clock_off_either_way(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    replica = Replica(tmp_path / "daemon", vonage_extra="max_clock_disagreement_s = 5")
    replicas.append(replica)
    replica.start()
    async with new_session() as session:
        for skew_s in (-20, 20):
            line = Line(session, replica.base_url)
            body = json.dumps({"from": CALLER, "uuid": f"call{skew_s}"}).encode()
            token = vonage.sign_webhook(
                body, SIGNATURE_SECRET.encode(), time.time() - skew_s, APPLICATION_ID
            )
            heard = await line.send("/webhooks/answer", body, token)
            assert_clock_goodbye(heard.status, heard.ncco)
    assert replica.metric("totpd_clock_refusals_total") == 2
    assert "outcome=clock_untrusted" in replica.log()
    # A genuine caller with a right clock still hears a code.
    call = run_totpd(replica.config_path, "call", "--press", PIN, "--press", "")
    assert "code is" in call.stdout, call.stdout + call.stderr


def test_a_daemon_on_its_own_port_forgives_no_start_up_time(tmp_path: Path) -> None:
    """Without socket activation nothing waits in a queue for the daemon: even after a slow
    start (2 s here), a webhook that looks older than the 1 s the clock may be off is a clock
    ahead, and refused, in the first seconds of serving as later."""
    port = free_port()
    with (tmp_path / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(
            slow_start_of(tmp_path, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={config_module.SIGNATURE_SECRET_ENV: SIGNATURE_SECRET, "PATH": "/usr/bin:/bin"},
        )
    try:
        wait_for_port(port, timeout_s=20)
        body = json.dumps({"from": CALLER, "to": "447700900999", "uuid": "started"}).encode()
        token = vonage.sign_webhook(
            body, SIGNATURE_SECRET.encode(), time.time() - 1.5, APPLICATION_ID
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/answer",
            data=body,
            headers={"Authorization": token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, ncco = response.status, json.loads(response.read())
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert_clock_goodbye(status, ncco)


def test_the_kernel_sync_flag_is_reported_never_obeyed(tmp_path: Path) -> None:
    replica = Replica(tmp_path / "daemon")
    replica.start()
    try:
        url = f"http://127.0.0.1:{replica.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            scraped = response.read().decode()
        synchronized = sample(scraped, "totpd_clock_synchronized")
        assert synchronized in (0.0, 1.0)
        warned = "clock is not synchronized" in replica.log()
        assert warned == (synchronized == 0.0)
        call = run_totpd(replica.config_path, "call", "--press", PIN, "--press", "")
        assert "code is" in call.stdout  # an unsynced flag alone refuses nothing
    finally:
        replica.stop()
