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
    lockouts_active: Gauge
    webhook_seconds: Histogram
    webhook_rejected: Counter
    codes_read: Counter
    calls_active: Gauge
    notifications: Counter
    notification_seconds: Histogram
    notification_targets: Gauge


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
            "PIN entries refused, by the layer that refused them (pin = wrong PIN)",
            ["layer"],
            registry=registry,
        ),
        lockouts_active=Gauge(
            "totpd_lockouts_active",
            "Lockouts currently in force, by layer",
            ["layer"],
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
