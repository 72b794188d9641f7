"""The webhook listener's connections: how long each may take, how many there may be, and
what aiohttp's low-level server answers on its own.

aiohttp parses HTTP and calls the handler (totpd.web) once a request's headers are in; the
handler checks the signed token before it reads the body (`Listener.body`), so a forged
request never waits for one. Each connection is in one phase at a time:

    HEADERS    new, or a request has begun: its headers are not all in yet
    BODY       the headers are in and checked, the body is still arriving
    ANSWERING  a complete request is being answered
    IDLE       between the requests of a keep-alive connection

Time limits ([server] in the config): HEADERS for `header_timeout_s` (then the connection is
closed: there is no request to answer yet), BODY for `body_timeout_s` (then 408), IDLE for
`idle_timeout_s` (aiohttp's keep-alive timeout).

The cap: at most `max_connections` at once, and never more than the descriptors the process
may open leave room for (RLIMIT_NOFILE less FD_RESERVE). A connection over the cap evicts the
one that has waited longest without delivering a complete request (HEADERS, BODY or IDLE);
only when every connection is answering a complete request is the newcomer turned away. Why
this rather than refusing newcomers: an attacker holding slow connections holds old ones,
while a genuine webhook's connection is new and delivers its request within a round trip. To
crowd it out, the attacker would have to open `max_connections` connections within that
round trip (a million a second at the default cap and a millisecond); refusing newcomers at
the cap would let a few hundred slow connections refuse every genuine call.

What aiohttp would answer by itself (malformed HTTP, a handler that failed) is answered here
instead, as JSON, and no answer names the server software: aiohttp would add `Server:
Python/3.x aiohttp/3.y` and plain-text or HTML error pages. Every refusal an outsider can
cause costs one metric increment and at most one log line per reason per interval
(`Refusals`), never a traceback: journald's rate limit would otherwise drop the audit lines
along with the noise.
"""

import asyncio
import logging
import resource
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, cast

from aiohttp import StreamReader, hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpProcessingError, RawRequestMessage
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web import RequestHandler
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import Counter, Gauge

from totpd import speedups
from totpd.config import ServerConfig
from totpd.errors import WebhookRejected
from totpd.logs import Throttle

log = logging.getLogger("totpd.web")

SWEEP_S = 1.0  # how often connections are checked against their time limits
LINGER_S = 1.0  # a refused request's unread body is drained this long, so the answer survives
FD_RESERVE = 256  # descriptors kept for everything but webhook connections

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
    return Response(body=speedups.dumps(document), status=status, content_type=JSON)


class Refusals:
    """Counts every refusal under its reason, and logs the first of each reason per interval
    with how many like it were not logged: a flood cannot flood the journal."""

    def __init__(self, counter: Counter, interval_s: float = 10.0) -> None:
        self.counter = counter
        self._throttle = Throttle(interval_s)

    def __call__(self, reason: str, route: str, fault: BaseException | None = None) -> None:
        """Count a refusal; log it unless one of its reason was logged within the interval.

        `fault` is a failure of totpd's own (a 500): its traceback goes with the line.
        """
        self.counter.labels(reason).inc()
        held = self._throttle.admit(reason)
        if held is None:
            return
        message = UNSIGNED_HINT if reason == "unsigned" else f"webhook refused: {reason}"
        log.log(
            logging.ERROR if fault else logging.WARNING,
            "%s (%d more like it not logged)",
            message,
            held,
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


class Phase(Enum):
    """Where a connection is in its current request (see the module's docstring)."""

    HEADERS = "headers"
    BODY = "body"
    ANSWERING = "answering"
    IDLE = "idle"


class Connection(RequestHandler):
    """aiohttp's HTTP/1.1 protocol for one connection, with its phase and since when it is in
    it (the event loop's clock), answering its own errors quietly."""

    __slots__ = ("_listener", "phase", "refusals", "since_s")

    def __init__(self, listener: "Listener", **options: Any) -> None:
        super().__init__(listener, **options)
        self._listener = listener
        self.refusals = listener.refusals
        self.phase = Phase.HEADERS
        self.since_s = 0.0

    def data_received(self, data: bytes) -> None:
        """Bytes arrived: after an idle spell, a new request has begun."""
        if self.phase is Phase.IDLE:
            self._listener.enter(self, Phase.HEADERS)
        super().data_received(data)

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
    """aiohttp's low-level server whose connections are `Connection`s, kept to their time
    limits and to the cap (see the module's docstring).

    `limits` returns the [server] settings in force (a reload may change them). Create it from
    within the event loop it will serve on.
    """

    def __init__(
        self,
        handler: Handler,
        request_factory: RequestFactory,
        refusals: Refusals,
        limits: Callable[[], ServerConfig],
        connections: Gauge,
    ) -> None:
        super().__init__(handler, request_factory=request_factory)
        self.refusals = refusals
        self.limits = limits
        self._gauge = connections
        self._event_loop = asyncio.get_running_loop()
        self.fd_ceiling = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - FD_RESERVE
        # Connections not answering a complete request, longest waiting first: evicted from
        # the front. Those answering one are never evicted.
        self._waiting: OrderedDict[Connection, None] = OrderedDict()
        self._answering: set[Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def max_connections(self) -> int:
        """The cap in force: the configured one, unless the descriptors allow fewer."""
        return max(1, min(self.limits().max_connections, self.fd_ceiling))

    def __call__(self) -> Connection:
        """A protocol for a new connection (the event loop's protocol factory)."""
        return Connection(
            self,
            loop=self._event_loop,
            keepalive_timeout=self.limits().idle_timeout_s,
            lingering_time=LINGER_S,
            auto_decompress=False,  # the signed hash covers the bytes sent: no inflating
            access_log=None,  # the audit lines say what happened, without a line per request
        )

    # aiohttp's hooks: a connection opens and closes ---------------------------------------
    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        """Count the connection in; at the cap, make room (or turn it away)."""
        super().connection_made(handler, transport)
        connection = cast(Connection, handler)
        if len(self._waiting) + len(self._answering) >= self.max_connections:
            if not self._waiting:  # every connection is answering a complete request
                self.refusals("over_capacity", "-")
                connection.force_close()
                return
            oldest, _ = self._waiting.popitem(last=False)
            self.refusals("evicted", "-")
            oldest.force_close()
        connection.since_s = self._event_loop.time()
        self._waiting[connection] = None
        self._gauge.set(len(self._waiting) + len(self._answering))
        if self._sweeper is None:
            self._sweeper = self._event_loop.call_later(SWEEP_S, self._sweep)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        """Count the connection out."""
        super().connection_lost(handler, exc)
        connection = cast(Connection, handler)
        self._waiting.pop(connection, None)
        self._answering.discard(connection)
        self._gauge.set(len(self._waiting) + len(self._answering))

    # phases -------------------------------------------------------------------------------
    def enter(self, connection: Connection, phase: Phase) -> None:
        """`connection` moves to `phase` now (a connection already closed stays gone)."""
        if connection in self._waiting:
            self._waiting.pop(connection)
        elif connection in self._answering:
            self._answering.discard(connection)
        else:
            return
        connection.phase = phase
        if phase is Phase.ANSWERING:
            self._answering.add(connection)
        else:
            connection.since_s = self._event_loop.time()
            self._waiting[connection] = None

    def headers_in(self, request: web.BaseRequest) -> None:
        """The handler has `request`'s headers; its body may still be on the way."""
        connection = cast(Connection, request.protocol)
        complete = request.content.is_eof()
        self.enter(connection, Phase.ANSWERING if complete else Phase.BODY)

    async def body(self, request: web.BaseRequest) -> bytes:
        """`request`'s body, whole: at most its `client_max_size`, within `body_timeout_s` of
        its headers; WebhookRejected otherwise."""
        connection = cast(Connection, request.protocol)
        try:
            if connection.phase is not Phase.BODY:  # it came with the headers
                return await request.read()
            deadline_s = connection.since_s + self.limits().body_timeout_s
            async with asyncio.timeout_at(deadline_s):
                payload = await request.read()
        except TimeoutError:
            raise WebhookRejected("body_timeout", status=408) from None
        except web.HTTPRequestEntityTooLarge:
            raise WebhookRejected("too_large", status=413) from None
        except ConnectionError:  # the caller hung up mid-body
            raise WebhookRejected("client_gone", status=400) from None
        except RequestPayloadError:  # a broken chunked encoding, a body cut short
            raise WebhookRejected("malformed_body", status=400) from None
        self.enter(connection, Phase.ANSWERING)
        return payload

    def answered(self, request: web.BaseRequest, response: web.StreamResponse | None) -> None:
        """The handler is done with `request` (`response` is None when it failed)."""
        connection = cast(Connection, request.protocol)
        if connection.transport is None:  # the caller hung up before the answer
            self.refusals("client_gone", "-")
            return
        if response is not None and not request.content.is_eof():
            response.force_close()  # refused before its body: the connection is in disarray
        self.enter(connection, Phase.IDLE)

    def _sweep(self) -> None:
        """Close connections whose headers are late; run again while any are open."""
        now_s = self._event_loop.time()
        cutoff_s = now_s - self.limits().header_timeout_s
        late = []
        for connection in self._waiting:  # longest waiting first
            if connection.since_s > cutoff_s:
                break
            if connection.phase is Phase.HEADERS:
                late.append(connection)
        for connection in late:
            self._waiting.pop(connection)
            self.refusals("header_timeout", "-")
            connection.force_close()
        if self._waiting or self._answering:
            self._sweeper = self._event_loop.call_later(SWEEP_S, self._sweep)
        else:
            self._sweeper = None

    def pre_shutdown(self) -> None:
        """Stop sweeping; aiohttp then closes the connections."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        super().pre_shutdown()
