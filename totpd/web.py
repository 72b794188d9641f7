"""The aiohttp shell around the call flow: authenticate, gather facts, step, render.

request -> size cap -> signed-JWT check -> parse -> claim the call at its step
        -> facts (the clock; at the PIN step totpd.pin_check: the lockout, Argon2 in a thread)
        -> flow.step -> ncco.render
        -> metrics and an audit line, from outcomes, never from secrets
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import RawRequestMessage
from aiohttp.web import RequestHandler
from prometheus_client import Histogram

from totpd import catalogues, flow, ncco, speedups, vonage
from totpd.config import Config
from totpd.errors import ClockUntrusted, SecretStoreError, TotpdError, WebhookRejected
from totpd.flow import Call, Keys, Silence, Step, UserEntered
from totpd.listener import JSON, Listener, Refusals, Response, json_response
from totpd.logs import Throttle
from totpd.notify import Event, EventKind
from totpd.otp import Kind, Reading, reading_at
from totpd.pin_check import check_pin
from totpd.roster import Roster
from totpd.services import Services

log = logging.getLogger("totpd.web")
audit = logging.getLogger("totpd.audit")

Handler = Callable[[web.BaseRequest], Awaitable[Response]]

INPUT_PREFIX = "/webhooks/input/"
# The answer webhook only counts the users (one user skips the user-number question): a view of
# the roster this old saves it a stat() per call. Every later step reads the file afresh.
ANSWER_ROSTER_MAX_AGE_S = 1.0


class Webhooks:
    """The public listener's one request handler: route, time, authenticate, step, render.

    aiohttp's low-level server calls it directly: three fixed routes need no router, and every
    webhook would otherwise pay for the application's routing and middleware machinery. Create
    it from within the event loop that serves `listener`.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.refusals = Refusals(services.metrics.webhook_rejected)
        self.listener = self._listen()
        self._greetings: dict[tuple[Step, str], bytes] = {}
        self._greetings_config = services.config
        self._clock_log = Throttle()
        self._clock_ncco: tuple[Config, bytes] | None = None  # rendered for this config
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

    def _listen(self) -> Listener:
        """aiohttp's low-level server around this handler, with the configured body cap, time
        limits and connection cap (totpd.listener)."""
        # Looked up once: before Python 3.12 get_running_loop() costs a getpid() syscall.
        loop = asyncio.get_running_loop()
        services = self.services

        def request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: AbstractStreamWriter,
            task: "asyncio.Task[None]",
        ) -> web.BaseRequest:
            max_body_bytes = services.config.server.max_body_bytes
            return web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=max_body_bytes
            )

        return Listener(
            self,
            request,
            self.refusals,
            lambda: services.config.server,
            services.metrics.webhook_connections,
        )

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer `request`, but write the answer only after yielding to the event loop once."""
        listener = self.listener
        listener.headers_in(request)
        response = None
        try:
            response = await self._respond(request)
            # The other requests that arrived in the same poll get their turn first, so the
            # answers of one batch leave back to back and the peer (a reverse proxy, Vonage's
            # edge) is woken once per batch instead of once per answer. Under load this halves
            # the kernel time per request (docs/performance.md); alone, it costs about a
            # microsecond.
            await asyncio.sleep(0)
            return response
        finally:
            listener.answered(request, response)

    async def _respond(self, request: web.BaseRequest) -> web.StreamResponse:
        """Route `request`; a refusal becomes a JSON 4xx, a metric and a throttled log line."""
        path = request.path
        key = INPUT_PREFIX if path.startswith(INPUT_PREFIX) else path
        found = self._routes.get(key)
        if found is None:
            return json_response({"error": "not_found"}, status=404)
        route, methods, handler, seconds = found
        if request.method not in methods:
            response = json_response({"error": "method_not_allowed"}, status=405)
            response.headers["Allow"] = ", ".join(sorted(methods))
            return response
        started_s = time.perf_counter()
        try:
            return await handler(request)
        except WebhookRejected as exc:
            self.refusals(exc.reason, route)
            return json_response({"error": exc.reason}, status=exc.status)
        except ClockUntrusted as exc:
            return self._clock_goodbye(route, exc.skew_s)
        except TotpdError as exc:  # a fault on our side (secret store, a full disk): Vonage
            # retries a 503 once. The message names a file or a store, never a secret.
            self.services.metrics.webhook_rejected.labels("unavailable").inc()
            log.error("webhook failed: %s", exc, extra={"fields": {"ROUTE": route}})
            return json_response({"error": "unavailable"}, status=503)
        finally:
            seconds.observe(time.perf_counter() - started_s)

    def _clock_goodbye(self, route: str, skew_s: float) -> Response:
        """The answer to a webhook signed by a clock ours disagrees with: the caller hears why
        and the call ends (an event is acknowledged); nothing else happens."""
        services = self.services
        services.metrics.clock_refusals.inc()
        held = self._clock_log.admit("clock")
        if held is not None:  # the owner is told as often as the journal
            limit_s = services.config.vonage.max_clock_disagreement_s
            services.notifier.send(
                Event(EventKind.CLOCK, services.clock(), skew_s=skew_s, limit=limit_s, repeats=held)
            )
            log.warning(
                "clock untrusted: local time minus the webhook's signed iat is %+.0f s, more"
                " than vonage.max_clock_disagreement_s = %d; no code read, no PIN checked"
                " (check NTP: timedatectl) (%d more like it not logged)",
                skew_s,
                services.config.vonage.max_clock_disagreement_s,
                held,
                extra={
                    "fields": {
                        "ROUTE": route,
                        "OUTCOME": "clock_untrusted",
                        "SKEW_S": f"{skew_s:.0f}",
                    }
                },
            )
        if route == "event":
            return Response(status=204)
        config = services.config
        if self._clock_ncco is None or self._clock_ncco[0] is not config:
            goodbye = flow.Goodbye(flow.Ending.CLOCK_UNTRUSTED)
            self._clock_ncco = (config, _render(services, Step.ENDED, "", [goodbye]))
        return Response(body=self._clock_ncco[1], content_type=JSON)

    async def _authenticate(self, request: web.BaseRequest) -> dict[str, Any]:
        """Verify the signed JWT and refuse a replayed `jti`; return the webhook's fields.

        What the headers show is checked before the body is read, so a forged request never
        waits for its body (and never makes totpd wait for it either).
        """
        services = self.services
        vonage_config = services.config.vonage
        if (request.content_length or 0) > services.config.server.max_body_bytes:
            raise WebhookRejected("too_large", status=413)
        token = vonage.verify_token(
            request.headers.get("Authorization"),
            services.signature_secret,
            vonage_config.application_id,
        )
        now_s = services.clock()
        # The iat is Vonage's, from an NTP-disciplined clock: when ours disagrees, ours is
        # the suspect (a Raspberry Pi has no RTC and may boot with a stale clock).
        skew_s = now_s - token.iat
        services.metrics.clock_skew.set(skew_s)
        limit_s = vonage_config.max_clock_disagreement_s
        # A webhook that waited in the socket's queue while this daemon started looks that
        # much older: not a clock ahead (clock.StartupWait).
        clock_trusted = -limit_s <= skew_s <= limit_s + services.startup.allowance_s()
        if clock_trusted:
            vonage.check_freshness(
                token, now_s, vonage_config.max_age_s, vonage_config.clock_skew_s
            )
        if request.method == "GET":
            query = request.query.items()
            fields = vonage.parse_query(query)
            vonage.check_payload(token, vonage.get_payload(query))
        else:
            payload = await self.listener.body(request)
            vonage.check_payload(token, payload)
            fields = vonage.parse_json(payload)
        if not clock_trusted:  # a genuine webhook, but no code from a clock in doubt
            raise ClockUntrusted(skew_s)
        window_s = vonage_config.max_age_s + 2 * vonage_config.clock_skew_s
        if not await services.replays.first_use(token.jti, window_s):
            raise WebhookRejected("replayed")
        return fields

    async def answer(self, request: web.BaseRequest) -> Response:
        """GET|POST /webhooks/answer: greet and ask for the user number or the PIN."""
        services = self.services
        start = vonage.parse_answer(await self._authenticate(request))
        users = services.roster.current(max_age_s=ANSWER_ROSTER_MAX_AGE_S).users
        sole = next(iter(users.values())) if len(users) == 1 else None
        sole_user = None if len(users) > 1 else (sole.name if sole else "")
        call, prompts = flow.start(
            start.uuid, start.caller, sole_user, sole.language if sole else ""
        )
        config = services.config
        if not await services.calls.create(call, config.call.max_call_s):
            raise WebhookRejected("duplicate_call", status=409)
        if log.isEnabledFor(logging.DEBUG):  # one line per call comes at hang-up; this is detail
            _log_step(call, "answered", logging.DEBUG)
        # The greeting carries no code and depends only on the first step, the language and the
        # config: rendered once per step and language, again after a reload.
        if self._greetings_config is not config:
            self._greetings, self._greetings_config = {}, config
        greeting = (call.step, call.language)
        body = self._greetings.get(greeting)
        if body is None:
            body = self._greetings[greeting] = _render(services, call.step, call.language, prompts)
        return Response(body=body, content_type=JSON)

    async def event(self, request: web.BaseRequest) -> Response:
        """POST /webhooks/event: call progress; a final status frees the call's state."""
        services = self.services
        status = vonage.parse_status(await self._authenticate(request))
        if status.is_final:
            call = await services.calls.discard(status.uuid)
            if call is not None:
                services.metrics.calls.labels(flow.outcome(call)).inc()
                _log_step(call, f"hung up ({status.status})")
        return Response(status=204)

    async def input_step(self, request: web.BaseRequest) -> Response:
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
        return Response(
            body=_render(services, next_call.step, next_call.language, spoken), content_type=JSON
        )


def _render(
    services: Services, step: Step, language: str, prompts: Sequence[ncco.Speakable]
) -> bytes:
    """The NCCO for `prompts` in `language` ("": the configured one), waiting at `step`."""
    config = services.config
    words = catalogues.find(language or config.call.language)
    return speedups.dumps(
        ncco.render(list(prompts), step, config.server.public_url, config.call, words)
    )


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
            return await check_pin(services, call, result.digits)
        case _:
            return Keys(result.digits, result.speech)


async def _speakable(services: Services, call: Call, prompt: flow.Prompt) -> ncco.Speakable:
    """Resolve ReadCode into the code itself; pass every other prompt through."""
    if not isinstance(prompt, flow.ReadCode):
        return prompt
    name = prompt.choice.account
    account = services.roster.current().accounts.get(name)
    if account is None:
        raise SecretStoreError(f"account {name!r} was removed")
    secret = await asyncio.to_thread(services.secrets.seed, name)
    min_seconds_left = services.config.call.min_seconds_left
    if account.kind is Kind.HOTP:
        reading = await asyncio.to_thread(_next_hotp, services, name, secret)
    else:
        reading = reading_at(account, secret, services.clock(), min_seconds_left)
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


def _next_hotp(services: Services, name: str, secret: str) -> Reading:
    """The HOTP code of `name` at its counter, which is advanced on disk first.

    Both under the directory's lock: two calls never hear the same code, and a counter that
    cannot be saved (StorageError, a 503) reads no code at all.
    """
    taken: list[Reading] = []

    def advance(roster: Roster) -> Roster:
        account = roster.accounts.get(name)
        if account is None:
            raise SecretStoreError(f"account {name!r} was removed")
        taken.append(reading_at(account, secret, services.clock(), 0))
        return roster.with_account(replace(account, counter=account.counter + 1))

    services.roster.update(advance)
    return taken[-1]


def _log_step(call: Call, what: str, level: int = logging.INFO) -> None:
    log.log(
        level,
        "call %s %s",
        call.uuid,
        what,
        extra={"fields": {"CALL_UUID": call.uuid, "STEP": call.step.value, "OUTCOME": what}},
    )


def create_server(services: Services) -> Listener:
    """The public webhook listener (call from within the event loop)."""
    return Webhooks(services).listener
