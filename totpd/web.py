"""The aiohttp shell around the call flow: authenticate, gather facts, step, render.

request -> size cap -> signed-JWT check -> parse -> claim the call at its step
        -> facts (lockout, Argon2 in a thread, the clock) -> flow.step -> ncco.render
        -> metrics and an audit line, from outcomes, never from secrets
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import StreamReader, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import RawRequestMessage
from aiohttp.web import RequestHandler
from prometheus_client import Histogram

from totpd import flow, ncco, vonage
from totpd.errors import LockoutUnavailable, SecretStoreError, TotpdError, WebhookRejected
from totpd.flow import Call, Choice, Keys, PinChecked, PinVerdict, Silence, Step, UserEntered
from totpd.notify import Event, EventKind, lockout_tripped
from totpd.otp import Kind, reading_at
from totpd.roster import Roster
from totpd.services import Services

JSON = "application/json"

log = logging.getLogger("totpd.web")
audit = logging.getLogger("totpd.audit")

Handler = Callable[[web.BaseRequest], Awaitable[web.Response]]

INPUT_PREFIX = "/webhooks/input/"
# The answer webhook only counts the users (one user skips the user-number question): a view of
# the roster this old saves it a stat() per call. Every later step reads the file afresh.
ANSWER_ROSTER_MAX_AGE_S = 1.0
UNSIGNED_HINT = (
    "webhook has no signed-webhook JWT: turn on 'Use signed webhooks' in the Vonage"
    " application's settings (and check the reverse proxy passes the Authorization header)"
)


class _RejectionLog:
    """Logs the first rejection of each reason per interval, so a flood cannot flood the journal."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._next_s: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, reason: str, route: str) -> None:
        now_s = time.monotonic()
        if now_s < self._next_s.get(reason, 0.0):
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._next_s[reason] = now_s + self.interval_s
        suppressed = self._suppressed.pop(reason, 0)
        message = UNSIGNED_HINT if reason == "unsigned" else f"webhook refused: {reason}"
        log.warning(
            "%s (%d more like it not logged)",
            message,
            suppressed,
            extra={"fields": {"ROUTE": route, "REASON": reason}},
        )


def _json(document: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(document), status=status, content_type=JSON)


class Webhooks:
    """The public listener's one request handler: route, time, authenticate, step, render.

    aiohttp's low-level server calls it directly: three fixed routes need no router, and every
    webhook would otherwise pay for the application's routing and middleware machinery.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self._rejection_log = _RejectionLog()
        self._greetings: dict[Step, bytes] = {}
        seconds = services.metrics.webhook_seconds
        # path -> (route label, methods, handler, its latency histogram)
        self._routes: dict[str, tuple[str, frozenset[str], Handler, Histogram]] = {
            "/webhooks/answer": (
                "answer",
                frozenset({"GET", "POST"}),
                self.answer,
                seconds.labels("answer"),
            ),
            "/webhooks/event": ("event", frozenset({"POST"}), self.event, seconds.labels("event")),
            INPUT_PREFIX: ("input", frozenset({"POST"}), self.input_step, seconds.labels("input")),
        }

    def server(self) -> web.Server:
        """aiohttp's low-level server around this handler, with the configured body cap and no
        access log (the audit lines say what happened, without a line per request).

        Call it from within the event loop the server will run on.
        """
        # Looked up once: before Python 3.12 get_running_loop() costs a getpid() syscall.
        loop = asyncio.get_running_loop()
        max_body_bytes = self.services.config.server.max_body_bytes

        def request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: AbstractStreamWriter,
            task: "asyncio.Task[None]",
        ) -> web.BaseRequest:
            return web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=max_body_bytes
            )

        return web.Server(self, request_factory=request, access_log=None)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer `request`, but write the answer only after yielding to the event loop once."""
        response = await self._respond(request)
        # The other requests that arrived in the same poll get their turn first, so the answers
        # of one batch leave back to back and the peer (a reverse proxy, Vonage's edge) is woken
        # once per batch instead of once per answer. Under load this halves the kernel time per
        # request (docs/performance.md); alone, it costs about a microsecond.
        await asyncio.sleep(0)
        return response

    async def _respond(self, request: web.BaseRequest) -> web.StreamResponse:
        """Route `request`; a refusal becomes a JSON 4xx, a metric and a throttled log line."""
        path = request.path
        key = INPUT_PREFIX if path.startswith(INPUT_PREFIX) else path
        found = self._routes.get(key)
        if found is None:
            return _json({"error": "not_found"}, status=404)
        route, methods, handler, seconds = found
        if request.method not in methods:
            response = _json({"error": "method_not_allowed"}, status=405)
            response.headers["Allow"] = ", ".join(sorted(methods))
            return response
        started_s = time.perf_counter()
        try:
            return await handler(request)
        except WebhookRejected as exc:
            self.services.metrics.webhook_rejected.labels(exc.reason).inc()
            self._rejection_log(exc.reason, route)
            return _json({"error": exc.reason}, status=exc.status)
        except TotpdError as exc:  # a fault on our side (secret store, ...): Vonage retries a 503
            log.error("webhook failed: %s", exc, extra={"fields": {"ROUTE": route}})
            return _json({"error": "unavailable"}, status=503)
        finally:
            seconds.observe(time.perf_counter() - started_s)

    async def _authenticate(self, request: web.BaseRequest) -> dict[str, Any]:
        """Verify the signed JWT and refuse a replayed `jti`; return the webhook's fields."""
        services = self.services
        vonage_config = services.config.vonage
        if request.method == "GET":
            payload = vonage.get_payload(request.query.items())
        else:
            payload = await request.read()
        jti = vonage.verify_webhook(
            request.headers.get("Authorization"),
            payload,
            services.signature_secret,
            services.clock(),
            max_age_s=vonage_config.max_age_s,
            skew_s=vonage_config.clock_skew_s,
            application_id=vonage_config.application_id,
        )
        window_s = vonage_config.max_age_s + 2 * vonage_config.clock_skew_s
        if not await services.replays.first_use(jti, window_s):
            raise WebhookRejected("replayed")
        if request.method == "GET":
            return dict(request.query)
        return vonage.parse_json(payload)

    async def answer(self, request: web.BaseRequest) -> web.Response:
        """GET|POST /webhooks/answer: greet and ask for the user number or the PIN."""
        services = self.services
        start = vonage.parse_answer(await self._authenticate(request))
        users = services.roster.current(max_age_s=ANSWER_ROSTER_MAX_AGE_S).users
        sole_user = None if len(users) > 1 else next(iter(users), "")
        call, prompts = flow.start(start.uuid, start.caller, sole_user)
        config = services.config
        if not await services.calls.create(call, config.call.max_call_s):
            raise WebhookRejected("duplicate_call", status=409)
        if log.isEnabledFor(logging.DEBUG):  # one line per call comes at hang-up; this is detail
            _log_step(call, "answered", logging.DEBUG)
        # The greeting carries no code and depends only on the first step: rendered once.
        body = self._greetings.get(call.step)
        if body is None:
            body = self._greetings[call.step] = _render(services, call.step, prompts)
        return web.Response(body=body, content_type=JSON)

    async def event(self, request: web.BaseRequest) -> web.Response:
        """POST /webhooks/event: call progress; a final status frees the call's state."""
        services = self.services
        status = vonage.parse_status(await self._authenticate(request))
        if status.is_final:
            call = await services.calls.discard(status.uuid)
            if call is not None:
                services.metrics.calls.labels(flow.outcome(call)).inc()
                _log_step(call, f"hung up ({status.status})")
        return web.Response(status=204)

    async def input_step(self, request: web.BaseRequest) -> web.Response:
        """POST /webhooks/input/{step}: what the caller typed, for a call waiting at that step."""
        services = self.services
        try:
            step = Step(request.path.removeprefix(INPUT_PREFIX))
        except ValueError:
            raise WebhookRejected("unknown_step", status=404) from None
        result = vonage.parse_input(await self._authenticate(request))
        call = await services.calls.claim(result.uuid, step)
        if call is None:
            raise WebhookRejected("call_not_waiting", status=409)
        ttl_s = services.config.call.max_call_s
        try:
            next_call, prompts = flow.step(
                call,
                await _event_from_input(services, call, result),
                services.config.call.max_pin_attempts,
            )
            spoken = [await _speakable(services, next_call, p) for p in prompts]
        except BaseException:
            await services.calls.settle(call, ttl_s)  # release it unchanged
            raise
        await services.calls.settle(next_call, ttl_s)
        if next_call.step is Step.ENDED:
            ending = next(p.ending for p in spoken if isinstance(p, flow.Goodbye))
            services.metrics.calls.labels(ending).inc()
        return web.Response(body=_render(services, next_call.step, spoken), content_type=JSON)


def _render(services: Services, step: Step, prompts: Sequence[ncco.Speakable]) -> bytes:
    config = services.config
    return orjson.dumps(ncco.render(list(prompts), step, config.server.public_url, config.call))


async def _event_from_input(
    services: Services, call: Call, result: vonage.InputResult
) -> flow.Event:
    """Turn raw input into the event the flow expects at this step."""
    if not result.digits and not result.speech:
        return Silence()
    match call.step:
        case Step.USER:
            user = None
            if result.digits.isdigit():
                user = services.roster.current().user_by_number(int(result.digits))
            return UserEntered(user.name if user else "")
        case Step.PIN:
            return await _check_pin(services, call, result.digits)
        case _:
            return Keys(result.digits, result.speech)


async def _check_pin(services: Services, call: Call, pin: str) -> PinChecked:
    """Count the attempt first (a tripped layer means no Argon2 at all), then the PIN, then the
    allowlist. Counting before checking keeps the bound under concurrency and crashes."""
    metrics = services.metrics
    lockout = services.lockout
    roster = services.roster.current()
    user = roster.users.get(call.user)

    def gauge(layer: str, count: int) -> None:
        metrics.lockouts_active.labels(layer).set(count)

    try:
        admission = await lockout.admit(call.caller, call.user)
    except LockoutUnavailable as exc:
        log.error("no PIN checked: %s", exc)
        metrics.pin_failures.labels("unavailable").inc()
        return _pin_logged(call, PinChecked(PinVerdict.UNAVAILABLE))
    if admission.refused_by is not None:
        metrics.pin_failures.labels(admission.refused_by).inc()
        await lockout.report(gauge)
        return _pin_logged(call, PinChecked(PinVerdict.LOCKED), layer=admission.refused_by)
    check = await services.pins.verify(user.pin_hash if user else None, pin)
    allowed = user is not None and user.allows(call.caller)
    if check.ok and allowed and user is not None:
        await lockout.give_back(admission)
        if check.new_hash:
            await _store_rehash(services, user.name, check.new_hash)
        choices = tuple(
            Choice(name, roster.accounts[name].label)
            for name in user.accounts
            if name in roster.accounts
        )
        return _pin_logged(call, PinChecked(PinVerdict.ACCEPTED, choices))
    metrics.pin_failures.labels("pin").inc()
    if tripped := await lockout.record_failure(admission):
        await lockout.report(gauge, force=True)
    for state in tripped:
        services.notifier.send(lockout_tripped(state, call.user, call.caller, services.clock()))
    verdict = PinVerdict.CALLER_NOT_ALLOWED if check.ok else PinVerdict.WRONG
    return _pin_logged(call, PinChecked(verdict))


async def _store_rehash(services: Services, user_name: str, new_hash: str) -> None:
    """Upgrade a PIN hash to the configured Argon2 parameters."""

    def change(roster: Roster) -> Roster:
        user = roster.users.get(user_name)
        return roster.with_user(replace(user, pin_hash=new_hash)) if user else roster

    await asyncio.to_thread(services.roster.update, change)


async def _speakable(services: Services, call: Call, prompt: flow.Prompt) -> ncco.Speakable:
    """Resolve ReadCode into the code itself; pass every other prompt through."""
    if not isinstance(prompt, flow.ReadCode):
        return prompt
    name = prompt.choice.account
    account = services.roster.current().accounts.get(name)
    if account is None:
        raise SecretStoreError(f"account {name!r} was removed")
    secret = await asyncio.to_thread(services.secrets.seed, name)
    reading = reading_at(account, secret, services.clock(), services.config.call.min_seconds_left)
    if account.kind is Kind.HOTP:
        await asyncio.to_thread(services.roster.update, lambda d: _advance_hotp(d, name))
    services.metrics.codes_read.labels(name).inc()
    audit.info(
        "code read: user %s, account %s, caller %s",
        call.user,
        name,
        call.caller or "withheld",
        extra={
            "fields": {
                "CALL_UUID": call.uuid,
                "USER": call.user,
                "ACCOUNT": name,
                "CALLER": call.caller or "withheld",
                "OUTCOME": "code_read",
            }
        },
    )
    services.notifier.send(
        Event(EventKind.CODE_READ, services.clock(), call.user, call.caller, prompt.choice.label)
    )
    return ncco.SayCode(prompt.choice.label, reading)


def _advance_hotp(roster: Roster, name: str) -> Roster:
    account = roster.accounts[name]
    return roster.with_account(replace(account, counter=account.counter + 1))


def _pin_logged(call: Call, checked: PinChecked, layer: str = "") -> PinChecked:
    fields = {"CALL_UUID": call.uuid, "STEP": "pin", "OUTCOME": checked.verdict.value}
    if layer:
        fields["LAYER"] = layer
    log.info(
        "PIN %s for user %r from %s%s",
        checked.verdict.value,
        call.user,
        call.caller or "withheld",
        f" (locked: {layer})" if layer else "",
        extra={"fields": {**fields, "USER": call.user, "CALLER": call.caller or "withheld"}},
    )
    return checked


def _log_step(call: Call, what: str, level: int = logging.INFO) -> None:
    log.log(
        level,
        "call %s %s",
        call.uuid,
        what,
        extra={"fields": {"CALL_UUID": call.uuid, "STEP": call.step.value, "OUTCOME": what}},
    )


def create_server(services: Services) -> web.Server:
    """The public webhook listener (call from within the event loop)."""
    return Webhooks(services).server()
