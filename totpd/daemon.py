"""`totpd serve`: the webhook listener and the metrics listener in one event loop."""

import asyncio
import gc
import logging
import os
import signal
import socket

from aiohttp import web

from totpd import clock, reload, speedups, systemd
from totpd import config as config_module
from totpd.config import Config, Listen, UnixSocket
from totpd.config import warnings as config_warnings
from totpd.errors import ConfigError, TotpdError
from totpd.listener import Listener
from totpd.lockout import publish_locked
from totpd.metrics import create_metrics_app
from totpd.services import Services, open_services
from totpd.unix_socket import BoundSocket, bind_unix_socket
from totpd.web import create_server

log = logging.getLogger("totpd")

LISTENERS = ("webhooks", "metrics", "admin")
# In-flight webhooks get this long to finish on SIGTERM (the unit's TimeoutStopSec is 20 s),
# then queued notifications get NOTIFY_DRAIN_S.
DRAIN_S = 10.0
NOTIFY_DRAIN_S = 5.0
STATUS_INTERVAL_S = 10.0
# Connections the kernel queues until the daemon accepts them (capped by net.core.somaxconn;
# totpd.socket asks for the same). aiohttp's default, 128, overflowed under `make bench`'s
# slow-connection siege: the kernel dropped genuine handshakes, and each retry came a second
# later, past Vonage's connect timeout. A queued connection holds no file descriptor; the
# listener's cap applies once it is accepted.
LISTEN_BACKLOG = 4096


async def _start(
    runner: web.BaseRunner,
    listen: Listen | UnixSocket,
    what: str,
    passed: list[socket.socket] | None,
    made: list[BoundSocket] | None = None,
) -> web.BaseRunner:
    """Start `runner` on the sockets systemd passed, else on `listen`; a Unix socket made here
    joins `made`, to be removed at shutdown."""
    await runner.setup()
    if passed:  # socket activation: systemd already bound the address
        for sock in passed:
            await web.SockSite(runner, sock, backlog=LISTEN_BACKLOG).start()
            log.info("%s listening on %s (socket activation)", what, _address(sock))
        return runner
    try:
        if isinstance(listen, UnixSocket):
            bound = bind_unix_socket(listen.path)
            if made is not None:
                made.append(bound)
            await web.SockSite(runner, bound.sock, backlog=LISTEN_BACKLOG).start()
        else:
            await web.TCPSite(runner, listen.host, listen.port, backlog=LISTEN_BACKLOG).start()
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
    """The STATUS= line: calls now and served, lockouts in force (also sets the gauge). Never
    raises for storage that is down (Redis, for either): it says so instead."""
    try:
        calls = f"{await services.calls.count()} calls in progress"
    except TotpdError:
        calls = "call storage down"
    served = f"{calls}, {_served(services)} served"
    try:
        states = await services.lockout.status()
    except TotpdError:
        return f"{served}; lockout storage down"
    locked = [state for state in states if state.locked]
    publish_locked(services.metrics.set_locked, [s for s in states if services.lockout.in_scope(s)])
    return f"{served}, {len(locked)} lockouts"


async def _report_status(services: Services) -> None:
    """Refresh the STATUS= line and the lockout gauge every STATUS_INTERVAL_S."""
    while True:
        await asyncio.sleep(STATUS_INTERVAL_S)
        systemd.notify_status(await _status(services))


async def _reload(services: Services) -> None:
    """SIGHUP: re-read the config file (what may change live changes for new requests; the
    rest waits for a restart, totpd.reload), then the users and accounts."""
    systemd.notify_reloading()
    _reload_config(services)
    try:
        roster = services.roster.current()
        log.info("reloaded %d users and %d accounts", len(roster.users), len(roster.accounts))
    except TotpdError as exc:
        log.error("reload failed, keeping the previous users and accounts: %s", exc)
    systemd.notify_ready(await _status(services))


def _reload_config(services: Services) -> None:
    """Apply what may change live of the config file as it is now; say what may not."""
    running = services.config
    if running.source is None:  # not read from a file (tests): nothing to re-read
        return
    try:
        loaded = config_module.load(running.source)
    except ConfigError as exc:
        log.error("reload: %s; the configuration in force stays", exc)
        return
    reconciled = reload.reconcile(running, loaded)
    for key in reconciled.pending:
        log.warning(
            "reload: %s changed (to %s) but needs a restart; it stays %s until then",
            key,
            reload.describe(loaded, key),
            reload.describe(running, key),
        )
    services.config = reconciled.config
    changed = ", ".join(reconciled.applied) or "nothing that applies live"
    log.info("reloaded %s: %s", running.source, changed)


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


def _report_clock(services: Services) -> None:
    """Export the kernel's sync flag and warn when it is off: a hint, never a refusal (the
    webhooks' signed iat is what decides whether the clock is trusted)."""
    limit_s = services.config.vonage.max_clock_disagreement_s
    try:
        sync = clock.kernel_sync()
    except OSError as exc:
        log.warning("cannot tell whether the clock is synchronized: %s", exc)
        services.metrics.clock_synchronized.set(0)
        return
    services.metrics.clock_synchronized.set(1 if sync.synchronized else 0)
    if sync.synchronized:
        log.info("the clock is synchronized, says %s", sync.source)
        return
    log.warning(
        "the clock is not synchronized, says %s: check NTP (timedatectl). Codes are read only"
        " while Vonage's signed iat agrees with this clock within %d s"
        " (vonage.max_clock_disagreement_s)",
        sync.source,
        limit_s,
    )


def _log_connection_cap(listener: Listener, config: Config) -> None:
    """Say how many webhook connections may be open, and why when it is fewer than asked."""
    cap = listener.max_connections
    if cap < config.server.max_connections:
        log.warning(
            "webhook connections capped at %d, below server.max_connections = %d: the"
            " descriptor limit (LimitNOFILE) leaves no room for more",
            cap,
            config.server.max_connections,
        )
    else:
        log.info("webhook connections capped at %d", cap)


async def run(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting and finish in-flight requests.

    Under systemd: READY=1 once the secret store is open and every listener is up, STATUS=
    lines, watchdog pings from this loop, STOPPING=1 on shutdown; SIGHUP re-reads the config
    file, users and accounts.
    """
    for warning in config_warnings(config):
        log.warning(warning)
    services = open_services(config)
    activated = _activated_sockets()
    if activated:  # webhooks may have waited in systemd's queue while this process started
        try:
            services.startup = clock.StartupWait.of_this_process()
        except (OSError, ValueError, IndexError) as exc:  # no /proc: nothing is forgiven
            log.warning("cannot tell when this process started: %s", exc)
    runners: list[web.BaseRunner] = []
    made: list[BoundSocket] = []
    tasks: list[asyncio.Task[None]] = []
    # Before any listener opens: a SIGTERM once a client can connect is a clean shutdown
    # (the admin socket removed, notifications drained), never the default instant death.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: tasks.append(loop.create_task(_reload(services)))
    )
    try:
        await services.notifier.start()
        _report_clock(services)
        listener = create_server(services)
        _log_connection_cap(listener, config)
        webhooks = web.ServerRunner(listener, shutdown_timeout=DRAIN_S)
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
            listen = config.admin.listen
            runners.append(await _start(admin, listen, "admin page", passed, made))
        tasks.append(loop.create_task(systemd.watchdog()))
        tasks.append(loop.create_task(_report_status(services)))
        _tune_garbage_collector()
        services.startup.serving()
        systemd.notify_ready(await _status(services))
        await stop.wait()
        systemd.notify_stopping(f"draining in-flight webhooks (up to {DRAIN_S:.0f} s)")
        log.info("stopping")
    finally:
        for task in tasks:
            task.cancel()
        for runner in reversed(runners):
            await runner.cleanup()
        for bound in made:
            bound.remove()
        await services.notifier.stop(NOTIFY_DRAIN_S)
        services.close()


def serve(config: Config) -> None:
    """Run the daemon in the foreground, on uvloop's event loop when installed (libuv: less
    time per request in the loop and the transports than asyncio's own)."""
    speedups.run(run(config))
