"""Sending off the hot path: a bounded queue per target, drained by a task of its own.

`Notifier.send` only enqueues (a few microseconds) and never raises or waits: a webhook that
reads a code is never slower because a notification server is slow, down or hanging. Each
target has its own queue and task, so one hanging server delays no other. A delivery gets
`attempts` tries, each bounded by `attempt_timeout_s`, with a doubling backoff, all within
`deadline_s`. Each (event, target) pair ends as exactly one `totpd_notifications_total`
result: `sent`; `failed` (tried, not delivered); or `dropped` (never tried: the queue was full,
or still held it at shutdown).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo

from totpd.logs import Throttle
from totpd.metrics import Metrics
from totpd.notify.events import Event, render
from totpd.notify.targets import Target

QUEUE_SIZE = 100
LOG_EVERY_S = 60.0

log = logging.getLogger("totpd.notify")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one delivery to one target is tried."""

    attempts: int = 3
    # Longer than Apprise's own socket timeouts (4 s to connect and to read over HTTP, 15 s to
    # connect over SMTP) plus its spacing: a timeout here means a server that trickles.
    attempt_timeout_s: float = 30.0
    backoff_s: float = 2.0  # before the second attempt; doubled before each later one
    deadline_s: float = 90.0


class _Throttled:
    """Logs the first problem of each kind per interval; counts the rest into the next line."""

    def __init__(self, interval_s: float = LOG_EVERY_S) -> None:
        self._throttle = Throttle(interval_s)

    def __call__(self, kind: str, message: str, *args: object) -> None:
        held = self._throttle.admit(kind)
        if held is not None:
            log.warning(f"{message} (%d more like it not logged)", *args, held)


@dataclass
class _Outbox:
    """One target's queue, the task that drains it, and the delivery in progress."""

    target: Target
    queue: "asyncio.Queue[tuple[Event, float]]"
    task: "asyncio.Task[None] | None" = None
    in_flight: Event | None = None
    warn: _Throttled = field(default_factory=_Throttled)


class Notifier:
    """Sends every event to every target, in the background. Without targets, does nothing."""

    def __init__(
        self,
        targets: Sequence[Target] = (),
        metrics: Metrics | None = None,
        policy: RetryPolicy = RetryPolicy(),
        queue_size: int = QUEUE_SIZE,
        zone: tzinfo | None = None,
    ) -> None:
        if targets and metrics is None:
            raise ValueError("a notifier with targets needs the metrics to count them")
        self.targets = tuple(targets)
        self.policy = policy
        self.zone = zone
        self.metrics = metrics
        self._outboxes = [_Outbox(t, asyncio.Queue(maxsize=queue_size)) for t in self.targets]
        self._closed = False
        if metrics is not None:
            metrics.notification_targets.set(len(self.targets))

    def send(self, event: Event) -> None:
        """Queue `event` for every target; never blocks, never raises. Full queue: dropped."""
        queued_s = time.monotonic()
        for outbox in self._outboxes:
            if self._closed:
                self._count(event, "dropped")
                continue
            try:
                outbox.queue.put_nowait((event, queued_s))
            except asyncio.QueueFull:
                self._count(event, "dropped")
                outbox.warn(
                    "full",
                    "%s: notification queue full, %s event dropped",
                    outbox.target,
                    event.kind,
                )

    async def start(self) -> None:
        """Start one sending task per target (call from the event loop that serves)."""
        loop = asyncio.get_running_loop()
        for outbox in self._outboxes:
            if outbox.task is None:
                outbox.task = loop.create_task(self._drain(outbox), name=f"notify {outbox.target}")

    async def stop(self, drain_s: float) -> None:
        """Refuse new events, give the queued ones up to `drain_s` to go, then stop sending."""
        self._closed = True
        started = [o for o in self._outboxes if o.task is not None]
        if started:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(o.queue.join() for o in started)), drain_s)
            tasks = [o.task for o in started if o.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        unsent = 0
        for outbox in self._outboxes:
            if outbox.in_flight is not None:
                self._count(outbox.in_flight, "failed")
                outbox.in_flight = None
                unsent += 1
            while not outbox.queue.empty():
                event, _ = outbox.queue.get_nowait()
                self._count(event, "dropped")
                unsent += 1
        if unsent:
            log.warning("stopping: %d notifications not sent within %.0f s", unsent, drain_s)

    async def _drain(self, outbox: _Outbox) -> None:
        while True:
            event, queued_s = await outbox.queue.get()
            outbox.in_flight = event
            try:
                delivered = await self._deliver(outbox, event)
            except Exception as exc:  # a fault of ours: this event fails, the next ones still go
                log.error(
                    "%s: %s notification failed: %s", outbox.target, event.kind, type(exc).__name__
                )
                delivered = False
            finally:
                outbox.queue.task_done()
            outbox.in_flight = None
            self._count(event, "sent" if delivered else "failed")
            if delivered and self.metrics is not None:
                self.metrics.notification_seconds.observe(time.monotonic() - queued_s)

    async def _deliver(self, outbox: _Outbox, event: Event) -> bool:
        """Try within the policy's bounds; log a failure (throttled) by its cause's type only."""
        policy = self.policy
        message = render(event, self.zone)
        deadline_s = time.monotonic() + policy.deadline_s
        backoff_s = policy.backoff_s
        cause = "refused"
        tries = 0
        for attempt in range(policy.attempts):
            remaining_s = deadline_s - time.monotonic()
            if remaining_s <= 0:
                break
            if attempt:
                await asyncio.sleep(min(backoff_s, remaining_s))
                backoff_s *= 2
                remaining_s = deadline_s - time.monotonic()
                if remaining_s <= 0:
                    break
            tries += 1
            try:
                timeout_s = min(policy.attempt_timeout_s, remaining_s)
                if await asyncio.wait_for(outbox.target.send(message), timeout_s):
                    return True
                cause = "refused"
            except TimeoutError:
                cause = "no answer in time"
            except Exception as exc:  # a plugin's own error: its type only, never its text
                cause = type(exc).__name__
        outbox.warn(
            "failed",
            "%s: %s notification not delivered after %d attempts (%s)",
            outbox.target,
            event.kind,
            tries,
            cause,
        )
        return False

    def _count(self, event: Event, result: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(event.kind.value, result).inc()
