"""`totpd serve`: the webhook listener and the metrics listener in one event loop."""

import asyncio
import gc
import logging
import os
import signal
import socket

import uvloop
from aiohttp import web
from aiohttp.http import HttpProcessingError

from totpd import systemd
from totpd.config import Config, Listen
from totpd.errors import ConfigError, TotpdError
from totpd.lockout import Layer
from totpd.metrics import create_metrics_app
from totpd.services import Services, open_services
from totpd.web import create_server

log = logging.getLogger("totpd")

LISTENERS = ("webhooks", "metrics", "admin")
# In-flight webhooks get this long to finish on SIGTERM (the unit's TimeoutStopSec is 20 s),
# then queued notifications get NOTIFY_DRAIN_S.
DRAIN_S = 10.0
NOTIFY_DRAIN_S = 5.0
STATUS_INTERVAL_S = 10.0


async def _start(
    runner: web.BaseRunner, listen: Listen, what: str, passed: list[socket.socket] | None
) -> web.BaseRunner:
    await runner.setup()
    if passed:  # socket activation: systemd already bound the address
        for sock in passed:
            await web.SockSite(runner, sock).start()
            log.info("%s listening on %s (socket activation)", what, _address(sock))
        return runner
    try:
        await web.TCPSite(runner, listen.host, listen.port).start()
    except OSError as exc:
        await runner.cleanup()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"cannot listen for {what} on {listen}: {reason}") from None
    log.info("%s listening on %s", what, listen)
    return runner


def _app_runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(app, access_log=None, shutdown_timeout=DRAIN_S)


def _address(sock: socket.socket) -> str:
    name = sock.getsockname()
    return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)


def _activated_sockets() -> dict[str, list[socket.socket]]:
    """Sockets from totpd.socket / totpd-metrics.socket by FileDescriptorName=.

    Sockets under any other name (a socket unit without FileDescriptorName=) serve webhooks.
    """
    activated = systemd.listen_sockets()
    known = {name: activated.pop(name) for name in LISTENERS if name in activated}
    others = [sock for socks in activated.values() for sock in socks]
    if others and "webhooks" not in known:
        known["webhooks"] = others
    elif others:
        log.warning("ignoring %d passed sockets with unknown names", len(others))
        for sock in others:
            sock.close()
    return known


def _served(services: Services) -> int:
    return int(
        sum(
            sample.value
            for family in services.metrics.calls.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        )
    )


async def _status(services: Services) -> str:
    """The STATUS= line: calls now and served, lockouts in force (also sets the gauge)."""
    active = await services.calls.count()
    try:
        states = await services.lockout.status()
    except TotpdError:
        return f"{active} calls in progress, {_served(services)} served; lockout storage down"
    locked = [state for state in states if state.locked]
    for layer in Layer:
        count = sum(1 for state in locked if state.layer == layer)
        services.metrics.lockouts_active.labels(layer.value).set(count)
    return f"{active} calls in progress, {_served(services)} served, {len(locked)} lockouts"


async def _report_status(services: Services) -> None:
    """Refresh the STATUS= line and the lockout gauge every STATUS_INTERVAL_S."""
    while True:
        await asyncio.sleep(STATUS_INTERVAL_S)
        systemd.notify_status(await _status(services))


async def _reload(services: Services) -> None:
    """SIGHUP: re-read users and accounts now (the config file needs a restart)."""
    systemd.notify_reloading()
    try:
        roster = services.roster.current()
        log.info("reloaded %d users and %d accounts", len(roster.users), len(roster.accounts))
    except TotpdError as exc:
        log.error("reload failed, keeping the previous users and accounts: %s", exc)
    systemd.notify_ready(await _status(services))


def _tune_garbage_collector() -> None:
    """Keep the cyclic garbage collector's full passes rare and short.

    A full pass walks every tracked object and stalls every request meanwhile: with thousands of
    calls in progress it cost tens of milliseconds, several times a second under load. What
    start-up loaded lives as long as the process, so it leaves the passes (gc.freeze); and the
    oldest generation is collected after 100 middle passes instead of 10. Call state and the
    replay cache hold no reference cycles: reference counting frees them either way.
    """
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)


class _QuietMalformedHttp(logging.Filter):
    """Drop aiohttp's ERROR-with-traceback for each malformed HTTP request.

    aiohttp already answers those with a 400; logging each one would let anyone on the internet
    fill the journal. Errors raised inside handlers are not HTTP parse errors and still log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, HttpProcessingError)


async def run(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting and finish in-flight requests.

    Under systemd: READY=1 once the secret store is open and every listener is up, STATUS=
    lines, watchdog pings from this loop, STOPPING=1 on shutdown, SIGHUP re-reads users.
    """
    logging.getLogger("aiohttp.server").addFilter(_QuietMalformedHttp())
    services = open_services(config)
    runners: list[web.BaseRunner] = []
    tasks: list[asyncio.Task[None]] = []
    activated = _activated_sockets()
    try:
        await services.notifier.start()
        webhooks = web.ServerRunner(create_server(services), shutdown_timeout=DRAIN_S)
        passed = activated.get("webhooks")
        runners.append(await _start(webhooks, config.server.listen, "webhooks", passed))
        if config.metrics.listen is not None or "metrics" in activated:
            metrics = _app_runner(create_metrics_app(services.metrics, services.calls.count))
            metrics_listen = config.metrics.listen or config.server.listen
            passed = activated.get("metrics")
            runners.append(await _start(metrics, metrics_listen, "metrics", passed))
        if config.admin.listen is not None:
            # Imported here: with the page off, its templates and image code never load.
            from totpd.admin import create_admin_app

            admin = _app_runner(create_admin_app(services))
            passed = activated.get("admin")
            runners.append(await _start(admin, config.admin.listen, "admin page", passed))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(
            signal.SIGHUP, lambda: tasks.append(loop.create_task(_reload(services)))
        )
        tasks.append(loop.create_task(systemd.watchdog()))
        tasks.append(loop.create_task(_report_status(services)))
        _tune_garbage_collector()
        systemd.notify_ready(await _status(services))
        await stop.wait()
        systemd.notify_stopping(f"draining in-flight webhooks (up to {DRAIN_S:.0f} s)")
        log.info("stopping")
    finally:
        for task in tasks:
            task.cancel()
        for runner in reversed(runners):
            await runner.cleanup()
        await services.notifier.stop(NOTIFY_DRAIN_S)
        services.close()


def serve(config: Config) -> None:
    """Run the daemon in the foreground, on uvloop's event loop (libuv: less time per request
    in the loop and the transports than asyncio's own)."""
    uvloop.run(run(config))
