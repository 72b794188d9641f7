"""The PIN step's facts, for the webhook shell: the lockout's verdict on the attempt, the PIN
checked with Argon2 (two verifications: the duress hash, then the PIN hash), and what a duress
PIN does besides. Every path costs the same Argon2 work and about the same time, so nothing
on the line tells a wrong PIN from a refusal or a duress PIN (docs/lockout.md, docs/duress.md).
"""

import asyncio
import logging
import time
from dataclasses import replace

from totpd.errors import LockoutUnavailable, StorageError
from totpd.flow import Call, Choice, PinChecked, PinVerdict
from totpd.lockout_windows import CallerClass, Layer, classify
from totpd.notify import Event, EventKind, lockout_tripped
from totpd.roster import Roster
from totpd.services import Services
from totpd.users import User

# The webhook shell's logger: these lines are its PIN step's, wherever the code lives.
log = logging.getLogger("totpd.web")


async def check_pin(services: Services, call: Call, pin: str) -> PinChecked:
    """Classify the attempt and count it in its class's windows first (a tripped layer means
    no check of a real hash), then check the PIN. Counting before checking keeps the bound
    under concurrency and crashes.

    An attempt that cannot succeed (a keypad number nobody has, or a caller not on the user's
    allowlist) is counted like any other but never meets the user's hash. Every refusal (that
    one, a locked window or a frozen user, storage that cannot count) is checked against the
    dummy hash in the same thread pool: it takes as long as a wrong PIN, so a lockout, an
    allowlist or a user that does not exist cannot be heard in the time the answer takes.

    The user's duress PIN is a wrong PIN to the caller and to the lockout; what else it does
    (`_duress`) happens while Argon2 checks the PIN hash, so it costs the answer no time.
    """
    metrics = services.metrics
    lockout = services.lockout
    roster = services.roster.current()
    user = roster.users.get(call.user)
    caller_class = classify(user, call.caller)
    allowed = user is not None and user.allows(call.caller)
    started_s = time.perf_counter()
    try:
        admission = await lockout.admit(call.caller, call.user, caller_class)
    except LockoutUnavailable as exc:
        log.error("no PIN checked: %s", exc)
        await _refuse_in_time(services, pin, started_s)
        metrics.pin_failures.labels("unavailable", caller_class).inc()
        return _pin_logged(call, PinChecked(PinVerdict.UNAVAILABLE), caller_class)
    if admission.refused_by is not None:
        await _refuse_in_time(services, pin, started_s)
        metrics.pin_failures.labels(admission.refused_by, caller_class).inc()
        await lockout.report(metrics.set_locked)
        return _pin_logged(
            call, PinChecked(PinVerdict.LOCKED), caller_class, layer=admission.refused_by
        )
    counted_s = time.perf_counter() - started_s
    checked = user if allowed else None
    check = await services.pins.check(
        checked.pin_hash if checked else None,
        checked.duress_hash if checked else None,
        pin,
        lambda: _duress(services, call, checked),
    )
    if check.ok and user is not None:
        await lockout.give_back(admission)
        if check.new_hash:
            await _store_rehash(services, user.name, user.pin_hash, check.new_hash)
        choices = tuple(
            Choice(name, roster.accounts[name].label)
            for name in user.accounts
            if name in roster.accounts
        )
        return _pin_logged(
            call, PinChecked(PinVerdict.ACCEPTED, choices, user.language), caller_class
        )
    refused_by = "pin" if allowed else "no_user" if user is None else "allowlist"
    metrics.pin_failures.labels(refused_by, caller_class).inc()
    recorded_s = time.perf_counter()
    tripped = await lockout.record_failure(admission)
    lockout.note_counting_cost(counted_s + time.perf_counter() - recorded_s)
    if tripped:
        await lockout.report(metrics.set_locked, force=True)
    for state in tripped:
        services.notifier.send(lockout_tripped(state, call.user, call.caller, services.clock()))
    verdict = PinVerdict.CALLER_NOT_ALLOWED if refused_by == "allowlist" else PinVerdict.WRONG
    return _pin_logged(
        call, PinChecked(PinVerdict.DURESS if check.duress else verdict), caller_class
    )


async def _duress(services: Services, call: Call, user: User | None) -> None:
    """The user's duress PIN was entered: count it, freeze the user's codes if so set,
    and tell the owner, urgently. Runs while Argon2 verifies the PIN hash (PinHasher.check)."""
    if user is None:
        return
    services.metrics.duress.inc()
    frozen = False
    if user.duress_freezes:
        try:
            if await services.lockout.freeze(user.name):
                # Not Lockout.report(): reading every window would outlast the Argon2 check
                # this hides in. The next report counts them all again.
                services.metrics.lockouts_active.labels(Layer.FROZEN, "any").inc()
            frozen = True
        except LockoutUnavailable as exc:
            log.error("user %r not frozen: %s", user.name, exc)
    log.warning(
        "duress PIN of user %r entered from %s%s",
        user.name,
        call.caller or "withheld",
        f"; no PIN of {user.name}'s is accepted until `totpd unlock --user {user.name}`"
        if frozen
        else "",
        extra={
            "fields": {
                "CALL_UUID": call.uuid,
                "USER": user.name,
                "CALLER": call.caller or "withheld",
                "OUTCOME": "duress",
                "FROZEN": "yes" if frozen else "no",
            }
        },
    )
    services.notifier.send(
        Event(EventKind.DURESS, services.clock(), user.name, call.caller, frozen=frozen)
    )


async def _refuse_in_time(services: Services, pin: str, started_s: float) -> None:
    """Spend on a refusal what a wrong PIN costs: the same two Argon2 verifications (against
    the dummy hash), in the same thread pool, and what counting and recording an attempt has
    lately cost the storage (fsyncs a refusal does not make), less what reading the windows
    took before the refusal."""
    storage_s = services.lockout.counting_cost_s - (time.perf_counter() - started_s)
    await services.pins.check(None, None, pin)
    await asyncio.sleep(max(0.0, storage_s))


async def _store_rehash(
    services: Services, user_name: str, verified_hash: str, new_hash: str
) -> None:
    """Upgrade a PIN hash to the configured Argon2 parameters, when the directory can be saved
    and the user's hash is still the one just verified (an admin may have changed the PIN
    meanwhile: the new one stays).

    A failure does not fail the call: the stored hash still verifies, and the next correct
    PIN tries again. Failing it would turn a full disk into a lockout of the owner, and
    Vonage's retry into another Argon2 check.
    """

    def change(roster: Roster) -> Roster:
        user = roster.users.get(user_name)
        if user is None or user.pin_hash != verified_hash:
            return roster
        return roster.with_user(replace(user, pin_hash=new_hash))

    try:
        await asyncio.to_thread(services.roster.update, change)
    except StorageError as exc:
        log.warning(
            "PIN hash of user %r not upgraded to the configured Argon2 cost (next time): %s",
            user_name,
            exc,
            extra={"fields": {"USER": user_name, "OUTCOME": "rehash_failed"}},
        )


def _pin_logged(
    call: Call, checked: PinChecked, caller_class: CallerClass, layer: str = ""
) -> PinChecked:
    fields = {
        "CALL_UUID": call.uuid,
        "STEP": "pin",
        "OUTCOME": checked.verdict.value,
        "CALLER_CLASS": caller_class.value,
    }
    if layer:
        fields["LAYER"] = layer
    log.info(
        "PIN %s for user %r from %s (%s)%s",
        checked.verdict.value,
        call.user,
        call.caller or "withheld",
        caller_class.value,
        f" (locked: {layer})" if layer else "",
        extra={"fields": {**fields, "USER": call.user, "CALLER": call.caller or "withheld"}},
    )
    return checked
