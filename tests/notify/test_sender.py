"""Sending: whole calls over real HTTP notify real servers on loopback, off the hot path.

The webhook listener runs on aiohttp's test server, the ntfy endpoint on another, and
aiosmtpd in its own thread; Apprise delivers to them as it would to ntfy.sh or a mail relay.
"""

import asyncio
import io
import re
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient

from tests.helpers import PIN, Client, Vonage, WebhookServer, enrol_demo, free_port, write_config
from tests.notify.servers import TOKEN, TOPIC, Ntfy, Smtp, notify_section, ntfy_url, write_urls
from totpd import config as config_module
from totpd.metrics import create_metrics
from totpd.notify import Event, EventKind, Notifier, RetryPolicy, load_targets
from totpd.notify.targets import SPACING_S
from totpd.services import Services, open_services

FAST = RetryPolicy(attempts=3, attempt_timeout_s=2.0, backoff_s=0.05, deadline_s=10.0)
WRONG_PIN = "000000"


def sent(services_or_notifier: Services | Notifier, event: str, result: str) -> float:
    """totpd_notifications_total{event, result}, from the app's own registry."""
    metrics = services_or_notifier.metrics
    assert metrics is not None
    value = metrics.registry.get_sample_value(
        "totpd_notifications_total", {"event": event, "result": result}
    )
    return value or 0.0


async def eventually(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Wait until `condition()` holds; fail after `timeout_s`."""
    deadline_s = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline_s, "condition not met in time"
        await asyncio.sleep(0.01)


Opener = Callable[..., Awaitable[tuple[Services, Vonage]]]


@pytest.fixture
async def open_app(tmp_path: Path, aiohttp_client: AiohttpClient) -> AsyncIterator[Opener]:
    """The webhook listener with notifications to `urls`, the notifier started."""
    opened: list[Services] = []

    async def start(*urls: str) -> tuple[Services, Vonage]:
        home = tmp_path / f"app{len(opened)}"
        home.mkdir()
        config = config_module.load(write_config(home, notify_section(write_urls(home, *urls))))
        config.paths.state_dir.mkdir(mode=0o700)
        enrol_demo(config)
        services = open_services(config)
        opened.append(services)
        await services.notifier.start()
        client: Client = await aiohttp_client(WebhookServer(services))
        return services, Vonage(client)

    yield start
    for services in opened:
        await services.notifier.stop(0.5)
        services.close()


def notifier_for(
    tmp_path: Path, *urls: str, policy: RetryPolicy = FAST, size: int = 100
) -> Notifier:
    """A notifier of its own (not the daemon's) for `urls`, counting into a fresh registry."""
    config = config_module.load(write_config(tmp_path, notify_section(write_urls(tmp_path, *urls))))
    return Notifier(load_targets(config), create_metrics(), policy, queue_size=size)


def a_code_read() -> Event:
    return Event(EventKind.CODE_READ, time.time(), "alice", "447700900001", "GitHub")


async def test_a_code_read_reaches_ntfy_and_the_mailbox_within_seconds(
    open_app: Opener,
    ntfy: Ntfy,
    ntfy_server: TestServer,
    smtp: Smtp,
    capsys: pytest.CaptureFixture[str],
) -> None:
    services, caller = await open_app(ntfy_url(ntfy_server), smtp.url())
    await caller.answer()
    latencies_s: list[float] = []

    def both_hold(messages: int) -> bool:
        return len(ntfy.published) >= messages and len(smtp.received) >= messages

    for read in range(5):  # the PIN reads the code; each "1" after it reads a fresh one
        await asyncio.sleep(SPACING_S)  # Apprise spaces one target's messages by this much
        started_s = time.monotonic()
        status, ncco = await (caller.press("pin", PIN) if read == 0 else caller.press("next", "1"))
        assert status == 200, ncco
        await eventually(partial(both_hold, read + 1))
        latencies_s += [
            ntfy.published[read].arrived_s - started_s,
            smtp.received[read].arrived_s - started_s,
        ]

    published = ntfy.published[0]
    assert published.topic == TOPIC
    assert published.authorization == f"Bearer {TOKEN}"
    assert published.title == "totpd: GitHub code read"
    assert published.message.startswith("Your GitHub code was read by phone at ")
    assert published.message.endswith(" from +447700900001 (user alice).")
    mail = smtp.received[0]
    assert mail.recipients == ("owner@example.org",)
    assert mail.message["Subject"] == "totpd: GitHub code read"
    assert published.message in mail.text
    await eventually(lambda: sent(services, "code_read", "sent") == 10)  # counted after the reply
    histogram = services.metrics.registry.get_sample_value("totpd_notification_seconds_count")
    assert histogram == 10
    with capsys.disabled():
        print(
            f"\n[notify] code-read webhook -> message at ntfy and SMTP: median"
            f" {statistics.median(latencies_s) * 1000:.0f} ms, max {max(latencies_s) * 1000:.0f}"
            f" ms over {len(latencies_s)} messages"
        )
    assert max(latencies_s) < 5.0


async def test_a_hanging_server_never_slows_a_call(
    open_app: Opener, ntfy: Ntfy, ntfy_server: TestServer, smtp: Smtp
) -> None:
    ntfy.mode = "hang"
    services, caller = await open_app(ntfy_url(ntfy_server), smtp.url())
    await caller.answer()
    started_s = time.monotonic()
    status, ncco = await caller.press("pin", PIN)
    answered_s = time.monotonic() - started_s
    assert status == 200
    assert any("code is" in action.get("text", "") for action in ncco)
    for again in range(3):
        status, _ = await caller.press("next", "1")
        assert status == 200, again
    await eventually(lambda: ntfy.requests >= 1 and len(smtp.received) == 4)
    # ntfy took the first request and never answered: Apprise waits up to 20 s for it.
    assert answered_s < 1.0
    assert ntfy.published == []
    # The mailbox is not held up by ntfy (counted once the reply is in: wait for it too).
    await eventually(lambda: sent(services, "code_read", "sent") == 4)


async def test_a_refusing_server_is_counted_failed_after_bounded_retries(
    tmp_path: Path, ntfy: Ntfy, ntfy_server: TestServer, totpd_log: io.StringIO
) -> None:
    ntfy.mode = "fail"
    notifier = notifier_for(tmp_path, ntfy_url(ntfy_server))
    await notifier.start()
    notifier.send(a_code_read())
    await eventually(lambda: sent(notifier, "code_read", "failed") == 1)
    await notifier.stop(1.0)
    assert ntfy.requests == FAST.attempts
    assert sent(notifier, "code_read", "sent") == 0
    logged = totpd_log.getvalue()
    assert "target 1 (ntfy): code_read notification not delivered after 3 attempts" in logged
    # Apprise logs "Failed to send ntfy notification to topic '...'", and the token at DEBUG.
    assert TOPIC not in logged
    assert TOKEN not in logged


async def test_a_dead_server_is_counted_failed_within_the_deadline(
    tmp_path: Path, totpd_log: io.StringIO
) -> None:
    url = f"ntfy://{TOKEN}@127.0.0.1:{free_port()}/{TOPIC}"  # nothing listens there
    notifier = notifier_for(tmp_path, url)
    await notifier.start()
    started_s = time.monotonic()
    notifier.send(a_code_read())
    await eventually(lambda: sent(notifier, "code_read", "failed") == 1)
    assert time.monotonic() - started_s < FAST.deadline_s
    await notifier.stop(1.0)
    logged = totpd_log.getvalue()
    assert "not delivered after 3 attempts (refused)" in logged
    assert TOPIC not in logged
    assert TOKEN not in logged


async def test_a_hanging_server_is_given_up_at_the_deadline(
    tmp_path: Path, ntfy: Ntfy, ntfy_server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    ntfy.mode = "hang"
    policy = RetryPolicy(attempts=5, attempt_timeout_s=0.3, backoff_s=0.05, deadline_s=0.8)
    notifier = notifier_for(tmp_path, ntfy_url(ntfy_server), policy=policy)
    await notifier.start()
    started_s = time.monotonic()
    notifier.send(a_code_read())
    await eventually(lambda: sent(notifier, "code_read", "failed") == 1)
    gave_up_s = time.monotonic() - started_s
    await notifier.stop(0.1)
    assert 0.7 < gave_up_s < 2.0
    assert "(no answer in time)" in caplog.text
    assert ntfy.requests < policy.attempts  # the deadline came before the attempts ran out


async def test_a_full_queue_drops_and_counts(
    tmp_path: Path, ntfy: Ntfy, ntfy_server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    ntfy.mode = "hang"
    notifier = notifier_for(tmp_path, ntfy_url(ntfy_server), size=2)
    await notifier.start()
    for _ in range(5):  # no await between them: the sending task has taken none yet
        notifier.send(a_code_read())
    assert sent(notifier, "code_read", "dropped") == 3
    assert "notification queue full, code_read event dropped (0 more like it" in caplog.text
    await eventually(lambda: ntfy.requests == 1)  # one in flight, one still queued
    await notifier.stop(0.1)
    # Every event ends as exactly one result: the one in flight failed, the queued one dropped.
    assert sent(notifier, "code_read", "failed") == 1
    assert sent(notifier, "code_read", "dropped") == 4
    notifier.send(a_code_read())  # after stop: dropped, not queued for nobody
    assert sent(notifier, "code_read", "dropped") == 5


async def test_an_event_that_cannot_be_worded_fails_alone(
    tmp_path: Path, ntfy: Ntfy, ntfy_server: TestServer, totpd_log: io.StringIO
) -> None:
    notifier = notifier_for(tmp_path, ntfy_url(ntfy_server))
    await notifier.start()
    notifier.send(Event(EventKind.LOCKOUT, time.time(), "alice", "", layer="user", until_s=1e300))
    notifier.send(a_code_read())
    await eventually(lambda: sent(notifier, "code_read", "sent") == 1)
    await notifier.stop(1.0)
    assert sent(notifier, "lockout", "failed") == 1
    assert "target 1 (ntfy): lockout notification failed: OverflowError" in totpd_log.getvalue()


async def test_queued_notifications_go_out_before_shutdown(
    tmp_path: Path, ntfy: Ntfy, ntfy_server: TestServer
) -> None:
    notifier = notifier_for(tmp_path, ntfy_url(ntfy_server))
    await notifier.start()
    for _ in range(3):
        notifier.send(a_code_read())
    await notifier.stop(10.0)
    assert len(ntfy.published) == 3
    assert sent(notifier, "code_read", "sent") == 3


async def test_a_tripped_lockout_is_notified(
    open_app: Opener, ntfy: Ntfy, ntfy_server: TestServer
) -> None:
    services, caller = await open_app(ntfy_url(ntfy_server))
    await caller.answer()
    for _ in range(3):  # per_caller = "3 per 15 minutes": the third wrong PIN locks the number
        status, _ = await caller.press("pin", WRONG_PIN)
        assert status == 200
    await eventually(lambda: len(ntfy.published) == 1)
    published = ntfy.published[0]
    assert published.title == "totpd: lockout (caller)"
    assert published.message.startswith(
        "totpd locked out caller +447700900001 after 3 wrong PINs, until "
    )
    assert published.message.endswith(". The last try was for user alice.")
    await eventually(lambda: sent(services, "lockout", "sent") == 1)  # counted after the reply
    assert sent(services, "code_read", "sent") == 0


async def test_a_burst_of_clock_refusals_is_one_message(
    open_app: Opener, ntfy: Ntfy, ntfy_server: TestServer
) -> None:
    """The clock guard tells the owner as often as it logs: once per interval, however many
    webhooks it refuses meanwhile."""

    class Behind(Vonage):  # Vonage's clock an hour behind ours, as a stale RTC would show it
        def token(self, body: bytes, **overrides: Any) -> str:
            return super().token(body, now=time.time() - 3600, **overrides)

    services, caller = await open_app(ntfy_url(ntfy_server))
    behind = Behind(caller.client)
    for index in range(5):
        behind.uuid = f"call-{index}"
        status, ncco = await behind.answer()
        assert status == 200
        assert "clock" in ncco[0]["text"]
    await eventually(lambda: sent(services, "clock", "sent") == 1)
    await asyncio.sleep(SPACING_S + 0.5)  # room for a second message, if one were queued
    [message] = ntfy.published
    assert message.title == "totpd: no code read, the clock is in doubt"
    assert re.search(r"disagree by \+360[01] s, more than the 5 s allowed", message.message)
    assert services.metrics.registry.get_sample_value("totpd_clock_refusals_total") == 5
