"""The webhook listener's connections: what aiohttp's low-level server answers on its own, and
how a refusal is counted and logged.

aiohttp parses HTTP and calls the handler (totpd.web) once a request's headers are in. What it
answers by itself (malformed HTTP, a handler that failed) is answered here instead, as JSON,
and no answer names the server software: aiohttp would add `Server: Python/3.x aiohttp/3.y`
and plain-text or HTML error pages.

Every refusal an outsider can cause costs one metric increment and at most one log line per
reason per interval (`Refusals`), never a traceback: the journal's own rate limit would
otherwise drop the audit lines along with the noise.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import StreamReader, hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpProcessingError, RawRequestMessage
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web import RequestHandler
from prometheus_client import Counter

log = logging.getLogger("totpd.web")

JSON = "application/json"
UNSIGNED_HINT = (
    "webhook has no signed-webhook JWT: turn on 'Use signed webhooks' in the Vonage"
    " application's settings (and check the reverse proxy passes the Authorization header)"
)


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
RequestFactory = Callable[
    [RawRequestMessage, StreamReader, RequestHandler, AbstractStreamWriter, "asyncio.Task[None]"],
    web.BaseRequest,
]


class Response(web.Response):
    """A web.Response that does not name the server: aiohttp adds a `Server` header with the
    versions of Python and aiohttp to every answer that has none."""

    async def _prepare_headers(self) -> None:
        # aiohttp's hook that fills in Date, Server and Connection (pinned in pyproject.toml;
        # tests/test_listener.py checks every status for the header).
        await super()._prepare_headers()
        self.headers.popall(hdrs.SERVER, None)


def json_response(document: object, status: int = 200) -> Response:
    """`document` as a JSON answer."""
    return Response(body=orjson.dumps(document), status=status, content_type=JSON)


class Refusals:
    """Counts every refusal under its reason, and logs the first of each reason per interval
    with how many like it were not logged: a flood cannot flood the journal."""

    def __init__(self, counter: Counter, interval_s: float = 10.0) -> None:
        self.counter = counter
        self.interval_s = interval_s
        self._next_s: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, reason: str, route: str, fault: BaseException | None = None) -> None:
        """Count a refusal; log it unless one of its reason was logged within the interval.

        `fault` is a failure of totpd's own (a 500): its traceback goes with the line.
        """
        self.counter.labels(reason).inc()
        now_s = time.monotonic()
        if now_s < self._next_s.get(reason, 0.0):
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._next_s[reason] = now_s + self.interval_s
        suppressed = self._suppressed.pop(reason, 0)
        message = UNSIGNED_HINT if reason == "unsigned" else f"webhook refused: {reason}"
        log.log(
            logging.ERROR if fault else logging.WARNING,
            "%s (%d more like it not logged)",
            message,
            suppressed,
            exc_info=fault,
            extra={"fields": {"ROUTE": route, "REASON": reason}},
        )


def error_reason(status: int, error: BaseException | None) -> str:
    """The refusal reason of an answer aiohttp would have written itself."""
    if status >= 500:
        return "internal_error" if status == 500 else "timeout"
    if isinstance(error, LineTooLong):
        return "header_too_large"
    if isinstance(error, HttpProcessingError) or status == 400:
        return "malformed_http"
    return f"http_{status}"


class Connection(RequestHandler):
    """aiohttp's HTTP/1.1 protocol for one connection, answering its own errors quietly."""

    __slots__ = ("refusals",)

    def __init__(self, manager: web.Server, refusals: Refusals, **options: Any) -> None:
        super().__init__(manager, **options)
        self.refusals = refusals

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Malformed HTTP (400) or a handler that failed (500, 504): a JSON answer, a metric,
        a throttled line (with the traceback for a failure of totpd's own), and the
        connection closes."""
        reason = error_reason(status, exc)
        self.refusals(reason, "-", exc if status >= 500 else None)
        if request.writer.output_size > 0:  # as aiohttp: half an answer cannot be replaced
            raise ConnectionError("an answer was already being written")
        response = json_response({"error": reason}, status)
        response.force_close()
        return response


class Listener(web.Server):
    """aiohttp's low-level server, whose connections are `Connection`s.

    `options` are RequestHandler's (timeouts, limits, access log); call it from within the
    event loop it will serve on.
    """

    def __init__(
        self,
        handler: Handler,
        refusals: Refusals,
        request_factory: RequestFactory,
        **options: Any,
    ) -> None:
        super().__init__(handler, request_factory=request_factory, **options)
        self.refusals = refusals
        self._options = options
        self._event_loop = asyncio.get_running_loop()

    def __call__(self) -> Connection:
        """A protocol for a new connection (the event loop's protocol factory)."""
        return Connection(self, self.refusals, loop=self._event_loop, **self._options)
