"""Every Prometheus metric totpd exports, in one place, on a registry created per app, and the
scrape endpoint that serves them.

Label values are fixed tokens (outcomes, layers, reasons, routes) or account names, which
the admin chose and which are not secret. Never a caller number, user PIN, seed or code.
"""

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.aiohttp import make_aiohttp_handler

import totpd
from totpd.errors import TotpdError

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DELIVERY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Metrics:
    """The registry and each metric on it."""

    registry: CollectorRegistry
    calls: Counter
    pin_failures: Counter
    duress: Counter
    lockouts_active: Gauge
    webhook_seconds: Histogram
    webhook_rejected: Counter
    webhook_connections: Gauge
    clock_refusals: Counter
    clock_skew: Gauge
    clock_synchronized: Gauge
    codes_read: Counter
    calls_active: Gauge
    notifications: Counter
    notification_seconds: Histogram
    notification_targets: Gauge

    def set_locked(self, layer: str, caller_class: str, count: int) -> None:
        """Set how many windows of one layer and caller class are locked now."""
        self.lockouts_active.labels(layer, caller_class).set(count)


def create_metrics() -> Metrics:
    """A fresh registry with every totpd metric and the process/platform collectors."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info("totpd_build", "totpd version", registry=registry).info({"version": totpd.__version__})
    return Metrics(
        registry=registry,
        calls=Counter("totpd_calls", "Calls ended, by outcome", ["outcome"], registry=registry),
        pin_failures=Counter(
            "totpd_pin_failures",
            "PIN entries refused, by what refused them (pin = a wrong PIN checked against a"
            " user's hash; allowlist, no_user = never checked, it could not succeed; frozen ="
            " the user's duress PIN froze the codes) and the caller's class (listed, unlisted)",
            ["layer", "class"],
            registry=registry,
        ),
        # No label: which user was coerced is for the owner's notification and the journal,
        # not for whoever reads the dashboards.
        duress=Counter(
            "totpd_duress",
            "Duress PINs entered (each also counted in totpd_pin_failures_total as layer=pin)",
            registry=registry,
        ),
        lockouts_active=Gauge(
            "totpd_lockouts_active",
            "Lockout windows locked now, by layer and caller class (any: the caller layer)",
            ["layer", "class"],
            registry=registry,
        ),
        webhook_seconds=Histogram(
            "totpd_webhook_seconds",
            "Webhook handling time, by route",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        webhook_rejected=Counter(
            "totpd_webhook_rejected",
            "Webhook requests refused, by reason",
            ["reason"],
            registry=registry,
        ),
        webhook_connections=Gauge(
            "totpd_webhook_connections",
            "Connections open to the webhook listener",
            registry=registry,
        ),
        clock_refusals=Counter(
            "totpd_clock_refusals",
            "Validly signed webhooks answered with the clock goodbye: their iat and the local"
            " clock disagreed by more than vonage.max_clock_disagreement_s",
            registry=registry,
        ),
        clock_skew=Gauge(
            "totpd_clock_skew_seconds",
            "Local time minus the iat of the last validly signed webhook",
            registry=registry,
        ),
        clock_synchronized=Gauge(
            "totpd_clock_synchronized",
            "1 when the kernel said at start-up that the clock is synchronized (NTP), else 0;"
            " reported only, never a reason to refuse",
            registry=registry,
        ),
        codes_read=Counter(
            "totpd_codes_read", "Codes read to callers, by account", ["account"], registry=registry
        ),
        calls_active=Gauge("totpd_calls_active", "Calls in progress", registry=registry),
        notifications=Counter(
            "totpd_notifications",
            "Notifications to each target, by event and result (sent, failed, dropped)",
            ["event", "result"],
            registry=registry,
        ),
        notification_seconds=Histogram(
            "totpd_notification_seconds",
            "From the event to the target accepting its notification",
            buckets=DELIVERY_BUCKETS_S,
            registry=registry,
        ),
        notification_targets=Gauge(
            "totpd_notification_targets", "Notification targets configured", registry=registry
        ),
    )


def create_metrics_app(
    metrics: Metrics, count_calls: Callable[[], Awaitable[int]]
) -> web.Application:
    """The Prometheus scrape endpoint, GET /metrics, for a listener of its own.

    Each scrape first counts the calls in progress (`count_calls`: in Redis, every replica's).
    """
    export = make_aiohttp_handler(metrics.registry)

    async def scrape(request: web.Request) -> web.StreamResponse:
        # Shared state may be down (Redis): the scrape still answers, so the alerts can fire.
        with contextlib.suppress(TotpdError):
            metrics.calls_active.set(await count_calls())
        return await export(request)

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app
