"""`totpd serve`: the webhook listener and the metrics listener in one event loop."""

import asyncio
import logging
import signal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from totpd.config import Config, Listen
from totpd.errors import ConfigError
from totpd.services import Services, open_services
from totpd.web import create_app

log = logging.getLogger("totpd")

METRICS_SERVICES = web.AppKey("metrics_services", Services)


async def _scrape(request: web.Request) -> web.Response:
    services = request.app[METRICS_SERVICES]
    services.metrics.calls_active.set(await services.calls.count())
    body = generate_latest(services.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_metrics_app(services: Services) -> web.Application:
    """The Prometheus scrape endpoint, on its own listener."""
    app = web.Application()
    app[METRICS_SERVICES] = services
    app.router.add_get("/metrics", _scrape)
    return app


async def _start(app: web.Application, listen: Listen, what: str) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, listen.host, listen.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen for {what} on {listen}: {exc.strerror}") from None
    log.info("%s listening on %s", what, listen)
    return runner


async def run(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting and finish in-flight requests."""
    services = open_services(config)
    runners: list[web.AppRunner] = []
    try:
        runners.append(await _start(create_app(services), config.server.listen, "webhooks"))
        if config.metrics.listen is not None:
            metrics_app = create_metrics_app(services)
            runners.append(await _start(metrics_app, config.metrics.listen, "metrics"))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("stopping")
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        services.close()


def serve(config: Config) -> None:
    """Run the daemon in the foreground."""
    asyncio.run(run(config))
