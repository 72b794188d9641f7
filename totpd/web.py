"""The aiohttp shell around the call flow: authenticate, gather facts, step, render.

request -> size cap -> signed-JWT check -> parse -> claim the call at its step
        -> facts (lockout, Argon2 in a thread, the clock) -> flow.step -> ncco.render
        -> metrics and an audit line, from outcomes, never from secrets
"""

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from totpd import flow, ncco, vonage
from totpd.config import CallConfig
from totpd.directory import Directory
from totpd.errors import LockoutUnavailable, SecretStoreError, TotpdError, WebhookRejected
from totpd.flow import Call, Choice, Keys, PinChecked, PinVerdict, Silence, Step, UserEntered
from totpd.otp import Kind, reading_at
from totpd.services import Services

SERVICES = web.AppKey("services", Services)

log = logging.getLogger("totpd.web")
audit = logging.getLogger("totpd.audit")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

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


_REJECTION_LOG = web.AppKey("rejection_log", _RejectionLog)


def _observed(services: Services, route: str, handler: Handler) -> Handler:
    """`handler` timed, its refusals turned into a JSON 4xx, a metric and a throttled log line.

    A wrapper per route rather than an aiohttp middleware: every webhook would otherwise pay for
    the middleware chain, and here the route and its latency histogram are known in advance.
    """
    seconds = services.metrics.webhook_seconds.labels(route)
    rejected = services.metrics.webhook_rejected

    async def observed(request: web.Request) -> web.StreamResponse:
        started_s = time.perf_counter()
        try:
            return await handler(request)
        except WebhookRejected as exc:
            rejected.labels(exc.reason).inc()
            request.app[_REJECTION_LOG](exc.reason, route)
            return web.json_response({"error": exc.reason}, status=exc.status)
        except TotpdError as exc:  # a fault on our side (secret store, ...): Vonage retries a 503
            log.error("webhook failed: %s", exc, extra={"fields": {"ROUTE": route}})
            return web.json_response({"error": "unavailable"}, status=503)
        finally:
            seconds.observe(time.perf_counter() - started_s)

    return observed


async def _authenticate(request: web.Request) -> dict[str, Any]:
    """Verify the signed JWT and refuse a replayed `jti`; return the webhook's fields."""
    services = request.app[SERVICES]
    vonage_config = services.config.vonage
    if request.method == "GET":
        payload = vonage.get_payload(request.query.items())
    else:
        payload = await request.read()
    claims = vonage.verify_webhook(
        request.headers.get("Authorization"),
        payload,
        services.signature_secret,
        services.clock(),
        max_age_s=vonage_config.max_age_s,
        skew_s=vonage_config.clock_skew_s,
        application_id=vonage_config.application_id,
    )
    window_s = vonage_config.max_age_s + 2 * vonage_config.clock_skew_s
    if not await services.replays.first_use(claims.jti, window_s):
        raise WebhookRejected("replayed")
    if request.method == "GET":
        return dict(request.query)
    return vonage.parse_json(payload)


def _respond(services: Services, call: Call, prompts: list[ncco.Speakable]) -> web.Response:
    if call.step is Step.ENDED:
        ending = next(p.ending for p in prompts if isinstance(p, flow.Goodbye))
        services.metrics.calls.labels(ending).inc()
    config = services.config
    actions = ncco.render(prompts, call.step, config.server.public_url, config.call)
    return web.json_response(actions)


@functools.lru_cache(maxsize=8)
def _greeting(
    prompts: tuple[flow.Prompt, ...], step: Step, base_url: str, config: CallConfig
) -> bytes:
    """The answer NCCO as JSON. It depends only on these (hashable) values and carries no code,
    so it is rendered once rather than on every call."""
    return json.dumps(ncco.render(list(prompts), step, base_url, config)).encode()


async def answer(request: web.Request) -> web.Response:
    """GET|POST /webhooks/answer: greet and ask for the user number or the PIN."""
    services = request.app[SERVICES]
    start = vonage.parse_answer(await _authenticate(request))
    users = services.directory.current().users
    sole_user = None if len(users) > 1 else next(iter(users), "")
    call, prompts = flow.start(start.uuid, start.caller, sole_user)
    config = services.config
    if not await services.calls.create(call, config.call.max_call_s):
        raise WebhookRejected("duplicate_call", status=409)
    if log.isEnabledFor(logging.DEBUG):  # one line per call comes at hang-up; this is detail
        _log_step(call, "answered", logging.DEBUG)
    body = _greeting(tuple(prompts), call.step, config.server.public_url, config.call)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def event(request: web.Request) -> web.Response:
    """POST /webhooks/event: call progress; a final status frees the call's state."""
    services = request.app[SERVICES]
    status = vonage.parse_status(await _authenticate(request))
    if status.is_final:
        call = await services.calls.discard(status.uuid)
        if call is not None:
            services.metrics.calls.labels(flow.outcome(call)).inc()
            _log_step(call, f"hung up ({status.status})")
    return web.Response(status=204)


async def input_step(request: web.Request) -> web.Response:
    """POST /webhooks/input/{step}: what the caller typed, for a call waiting at that step."""
    services = request.app[SERVICES]
    try:
        step = Step(request.match_info["step"])
    except ValueError:
        raise WebhookRejected("unknown_step", status=404) from None
    result = vonage.parse_input(await _authenticate(request))
    call = await services.calls.claim(result.uuid, step)
    if call is None:
        raise WebhookRejected("call_not_waiting", status=409)
    ttl_s = services.config.call.max_call_s
    try:
        next_call, prompts = flow.step(
            call, await _facts(services, call, result), services.config.call.max_pin_attempts
        )
        spoken = [await _speakable(services, next_call, p) for p in prompts]
    except BaseException:
        await services.calls.settle(call, ttl_s)  # release it unchanged
        raise
    await services.calls.settle(next_call, ttl_s)
    return _respond(services, next_call, spoken)


async def _facts(services: Services, call: Call, result: vonage.InputResult) -> flow.Event:
    """Turn raw input into the event the flow expects at this step."""
    if not result.digits and not result.speech:
        return Silence()
    match call.step:
        case Step.USER:
            user = None
            if result.digits.isdigit():
                user = services.directory.current().user_by_number(int(result.digits))
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
    directory = services.directory.current()
    user = directory.users.get(call.user)

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
        await lockout.passed(admission)
        if check.new_hash:
            await _store_rehash(services, user.name, check.new_hash)
        choices = tuple(
            Choice(name, directory.accounts[name].label)
            for name in user.accounts
            if name in directory.accounts
        )
        return _pin_logged(call, PinChecked(PinVerdict.ACCEPTED, choices))
    metrics.pin_failures.labels("pin").inc()
    if await lockout.failed(admission):
        await lockout.report(gauge, force=True)
    verdict = PinVerdict.CALLER_NOT_ALLOWED if check.ok else PinVerdict.WRONG
    return _pin_logged(call, PinChecked(verdict))


async def _store_rehash(services: Services, user_name: str, new_hash: str) -> None:
    """Upgrade a PIN hash to the configured Argon2 parameters."""

    def change(directory: Directory) -> Directory:
        user = directory.users.get(user_name)
        return directory.with_user(replace(user, pin_hash=new_hash)) if user else directory

    await asyncio.to_thread(services.directory.update, change)


async def _speakable(services: Services, call: Call, prompt: flow.Prompt) -> ncco.Speakable:
    """Resolve ReadCode into the code itself; pass every other prompt through."""
    if not isinstance(prompt, flow.ReadCode):
        return prompt
    name = prompt.choice.account
    account = services.directory.current().accounts.get(name)
    if account is None:
        raise SecretStoreError(f"account {name!r} was removed")
    secret = await asyncio.to_thread(services.secrets.seed, name)
    reading = reading_at(account, secret, services.clock(), services.config.call.min_seconds_left)
    if account.kind is Kind.HOTP:
        await asyncio.to_thread(services.directory.update, lambda d: _advance_hotp(d, name))
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
    return ncco.SayCode(prompt.choice.label, reading)


def _advance_hotp(directory: Directory, name: str) -> Directory:
    account = directory.accounts[name]
    return directory.with_account(replace(account, counter=account.counter + 1))


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


def create_app(services: Services) -> web.Application:
    """The public webhook application."""
    app = web.Application(client_max_size=services.config.server.max_body_bytes)
    app[SERVICES] = services
    app[_REJECTION_LOG] = _RejectionLog()
    answer_resource = app.router.add_resource("/webhooks/answer", name="answer")
    answer_resource.add_route("GET", _observed(services, "answer", answer))
    answer_resource.add_route("POST", _observed(services, "answer", answer))
    app.router.add_resource("/webhooks/event", name="event").add_route(
        "POST", _observed(services, "event", event)
    )
    app.router.add_resource("/webhooks/input/{step}", name="input").add_route(
        "POST", _observed(services, "input", input_step)
    )
    return app
