"""The daemon as a sysadmin runs it: `totpd call` places a call, the owner is told.

`totpd serve` runs as its own process with three targets: an ntfy server, one that refuses
every message, and an SMTP server. Its log (stderr, as journald would get it) is checked for
the URLs' secrets.
"""

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from tests.helpers import PIN, free_port, write_config
from tests.notify.servers import TOKEN, TOPIC, Ntfy, Smtp, notify_section, ntfy_url, write_urls
from totpd import config as config_module

Daemon = Callable[..., tuple[Path, int]]
REFUSED_TOPIC = "totpd-refused-7d1e"


async def scrape(config_path: Path) -> str:
    """The daemon's /metrics page."""
    listen = config_module.load(config_path).metrics.listen
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{listen}/metrics") as response,
    ):
        return await response.text()


async def totpd(config_path: Path, *args: str) -> tuple[int, str]:
    """Run `totpd ARGS` without blocking the test servers' event loop: (status, output)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "totpd",
        "--config",
        str(config_path),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_a_call_through_the_emulator_notifies_the_owner(
    daemon: Daemon,
    tmp_path: Path,
    ntfy: Ntfy,
    ntfy_server: TestServer,
    smtp: Smtp,
    aiohttp_server: AiohttpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refusing = Ntfy(token=TOKEN, mode="fail")
    refusing_server = await aiohttp_server(refusing.app())
    urls = write_urls(
        tmp_path,
        ntfy_url(ntfy_server),
        ntfy_url(refusing_server, topic=REFUSED_TOPIC),
        smtp.url(),
    )
    config_path, _ = daemon(notify_section(urls))

    started_s = time.monotonic()
    status, said = await totpd(config_path, "call", "--press", PIN, "--press", "1")
    assert status == 0, said
    assert "For GitHub, press 1." in said

    deadline_s = time.monotonic() + 30
    while not (ntfy.published and smtp.received and 'result="failed"' in await scrape(config_path)):
        assert time.monotonic() < deadline_s, "no notification in 30 s"
        await asyncio.sleep(0.1)
    with capsys.disabled():
        print(
            f"\n[notify] `totpd call` started -> message at ntfy"
            f" {(ntfy.published[0].arrived_s - started_s) * 1000:.0f} ms, at SMTP"
            f" {(smtp.received[0].arrived_s - started_s) * 1000:.0f} ms"
        )
    assert ntfy.published[0].message.endswith(" from +447700900001 (user alice).")
    assert ntfy.published[0].message.startswith("Your GitHub code was read by phone at ")
    assert smtp.received[0].message["Subject"] == "totpd: GitHub code read"
    assert refusing.requests == 3  # three attempts, then given up
    metrics = await scrape(config_path)
    assert 'totpd_notifications_total{event="code_read",result="sent"} 2.0' in metrics
    assert 'totpd_notifications_total{event="code_read",result="failed"} 1.0' in metrics
    assert "totpd_notification_targets 3.0" in metrics

    logged = (config_path.parent / "daemon.log").read_text()
    assert "target 2 (ntfy): code_read notification not delivered after 3 attempts" in logged
    for secret in (TOKEN, TOPIC, REFUSED_TOPIC, str(refusing_server.port)):
        assert secret not in logged
        assert secret not in metrics
        assert secret not in said


async def test_the_daemon_refuses_to_start_with_a_bad_url(tmp_path: Path) -> None:
    urls = write_urls(tmp_path, f"ntfyy://{TOKEN}@127.0.0.1/{TOPIC}")
    config_path = write_config(tmp_path, notify_section(urls), listen=f"127.0.0.1:{free_port()}")
    status, output = await totpd(config_path, "serve")
    assert status == 1
    assert "line 1: not a ntfyy:// URL that Apprise can use" in output
    assert TOKEN not in output


DURESS_PIN = "73829164"
WRONG_PIN = "59183746"  # as long as the duress PIN: the masked echo is the same


async def test_a_duress_pin_through_the_cli_and_the_emulator_sounds_wrong_and_alerts_the_owner(
    daemon: Daemon, tmp_path: Path, ntfy: Ntfy, ntfy_server: TestServer
) -> None:
    config_path, _ = daemon(notify_section(write_urls(tmp_path, ntfy_url(ntfy_server))))
    setting = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "totpd", "--config", str(config_path)),
        *("user", "passwd", "alice", "--duress", "--freeze"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(setting.communicate(f"{DURESS_PIN}\n".encode()), 60)
    assert setting.returncode == 0, output
    assert DURESS_PIN not in output.decode()

    def heard(said: str) -> list[str]:
        return said.splitlines()[1:]  # the first line names the call's uuid

    wrong = await totpd(config_path, "call", "--from", "447700900010", "--press", WRONG_PIN)
    duress = await totpd(config_path, "call", "--from", "447700900011", "--press", DURESS_PIN)
    frozen = await totpd(config_path, "call", "--from", "447700900012", "--press", PIN)
    assert wrong[0] == duress[0] == frozen[0] == 0
    assert heard(duress[1]) == heard(wrong[1])
    assert heard(frozen[1]) == heard(wrong[1])  # the right PIN, refused: the codes are frozen
    assert "not accepted" in wrong[1]

    deadline_s = time.monotonic() + 30
    while not ntfy.published:
        assert time.monotonic() < deadline_s, "no notification in 30 s"
        await asyncio.sleep(0.1)
    [message] = ntfy.published
    assert message.title == "URGENT totpd: duress PIN of alice entered"
    assert "from +447700900011" in message.message
    assert "`totpd unlock --user alice`" in message.message
    metrics = await scrape(config_path)
    assert "totpd_duress_total 1.0" in metrics
    assert 'totpd_lockouts_active{class="any",layer="frozen"} 1.0' in metrics

    status, unlocked = await totpd(config_path, "unlock", "--user", "alice")
    assert status == 0
    assert "alice's codes can be read again" in unlocked
    status, read = await totpd(
        config_path, "call", "--from", "447700900013", "--press", PIN, "--press", "1"
    )
    assert "Your GitHub code is" in read
    logged = (config_path.parent / "daemon.log").read_text()
    assert "duress PIN of user 'alice' entered from 447700900011" in logged
    for secret in (DURESS_PIN, TOKEN, TOPIC):
        assert secret not in logged
        assert secret not in metrics
        assert secret not in duress[1]
