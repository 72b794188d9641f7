"""The call, as a pure state machine: `start` and `step` turn events into prompts.

No I/O, no clock, no Argon2, no aiohttp: the web layer gathers the facts (who the user is,
the PIN verdict) and renders the prompts. Read `step` top to bottom as the script of a call:

    answer -> [user number] -> PIN -> menu (skipped for one account) -> code -> again / menu
"""

from dataclasses import dataclass, field, replace
from enum import StrEnum


class Step(StrEnum):
    """What the call waits for next; also the last path segment of the input webhook URL."""

    USER = "user"
    PIN = "pin"
    MENU = "menu"
    AFTER_CODE = "next"
    ENDED = "ended"


class PinVerdict(StrEnum):
    """What the shell found when it checked a PIN. Every refusal sounds the same to the caller."""

    ACCEPTED = "accepted"
    WRONG = "wrong"
    DURESS = "duress"  # the user's duress PIN: a wrong PIN to the caller, an alarm to the owner
    LOCKED = "locked"
    CALLER_NOT_ALLOWED = "caller_not_allowed"
    UNAVAILABLE = "unavailable"


class Ending(StrEnum):
    """Why totpd hung up; also the `outcome` of a finished call."""

    DONE = "done"
    NO_INPUT = "no_input"
    NO_CHOICE = "no_choice"
    PIN_REFUSED = "pin_refused"
    NO_ACCOUNTS = "no_accounts"
    CLOCK_UNTRUSTED = "clock_untrusted"  # the shell's verdict on a webhook, before any step


@dataclass(frozen=True)
class Choice:
    """An account on the caller's menu."""

    account: str
    label: str


@dataclass(frozen=True)
class Call:
    """The state of one call, bound to Vonage's call `uuid`. A value: `step` returns a new one.

    `language` is what the caller hears (a catalogue's tag; "" for the configured default): the
    user's once the PIN is accepted, or from the start when there is only one user.
    """

    uuid: str
    caller: str
    step: Step
    user: str = ""
    asks_user: bool = False
    attempts: int = 0
    misses: int = 0
    choices: tuple[Choice, ...] = ()
    account: str = ""
    codes_read: int = 0
    language: str = ""
    # Set by the call store when it creates the call, carried along and never read here: a
    # late request of an earlier call under the same uuid cannot write over this one.
    generation: str = field(default="", compare=False)


# Events: what happened on the line, with the facts the shell resolved.
@dataclass(frozen=True)
class Silence:
    """The caller typed nothing (input timed out) or said nothing recognisable."""


@dataclass(frozen=True)
class UserEntered:
    """The caller typed a user number; `user` is "" when no such user exists."""

    user: str


@dataclass(frozen=True)
class PinChecked:
    """The shell checked the PIN; when it was accepted, `choices` are the user's accounts and
    `language` the language they hear them in."""

    verdict: PinVerdict
    choices: tuple[Choice, ...] = ()
    language: str = ""


@dataclass(frozen=True)
class Keys:
    """Keypad digits (and optional speech) at the menu or after a code."""

    digits: str
    speech: tuple[str, ...] = ()


Event = Silence | UserEntered | PinChecked | Keys


# Prompts: what the caller hears next. The last one of a list may wait for input.
@dataclass(frozen=True)
class Welcome:
    """The greeting, once per call."""


@dataclass(frozen=True)
class AskUser:
    """Ask for the user number."""

    again: bool = False


@dataclass(frozen=True)
class AskPin:
    """Ask for the PIN."""

    again: bool = False


@dataclass(frozen=True)
class NotAccepted:
    """The PIN was refused (wrong, locked out or not allowed: the caller cannot tell which)."""


@dataclass(frozen=True)
class NotAnOption:
    """The key pressed or the name said matches nothing on offer."""


@dataclass(frozen=True)
class AskAccount:
    """Read the menu of accounts."""

    choices: tuple[Choice, ...]
    again: bool = False


@dataclass(frozen=True)
class ReadCode:
    """Read the current code of an account (the shell looks up the code and the time)."""

    choice: Choice


@dataclass(frozen=True)
class AskNext:
    """Offer to hear a fresh code, or (when there is more than one) another account."""

    more_accounts: bool
    again: bool = False


@dataclass(frozen=True)
class Goodbye:
    """Hang up."""

    ending: Ending


Prompt = (
    Welcome
    | AskUser
    | AskPin
    | NotAccepted
    | NotAnOption
    | AskAccount
    | ReadCode
    | AskNext
    | Goodbye
)
Outcome = tuple[Call, list[Prompt]]


def start(uuid: str, caller: str, sole_user: str | None, language: str = "") -> Outcome:
    """A new call. With exactly one user (`sole_user`, who hears `language`) skip straight to
    the PIN; with several, the call is in the default language until a PIN is accepted.

    The greeting depends on nothing but the step the call starts at and its language, so the
    web layer can render each one once.
    """
    if sole_user is None:
        return Call(uuid, caller, Step.USER, asks_user=True), [Welcome(), AskUser()]
    call = Call(uuid, caller, Step.PIN, user=sole_user, language=language)
    return call, [Welcome(), AskPin()]


def step(call: Call, event: Event, max_pin_attempts: int) -> Outcome:
    """The call's next state and prompts after `event`."""
    if isinstance(event, Silence):
        return _ask_again_or_end(call, None)
    match call.step, event:
        case Step.USER, UserEntered(user=user):
            return replace(call, step=Step.PIN, user=user, misses=0), [AskPin()]
        case Step.PIN, PinChecked(verdict=PinVerdict.ACCEPTED, choices=choices, language=language):
            return _accepted(replace(call, misses=0, choices=choices, language=language))
        case Step.PIN, PinChecked():
            return _refused(call, max_pin_attempts)
        case Step.MENU, Keys() as keys:
            choice = _pick(call.choices, keys)
            return _read_code(call, choice) if choice else _ask_again_or_end(call, NotAnOption())
        case Step.AFTER_CODE, Keys(digits="1"):
            return _read_code(call, next(c for c in call.choices if c.account == call.account))
        case Step.AFTER_CODE, Keys(digits="2") if len(call.choices) > 1:
            return replace(call, step=Step.MENU, misses=0), [AskAccount(call.choices)]
        case Step.AFTER_CODE, Keys():
            return _ask_again_or_end(call, NotAnOption())
    raise ValueError(f"event {type(event).__name__} does not belong to step {call.step}")


def _accepted(call: Call) -> Outcome:
    if not call.choices:
        return _end(call, Ending.NO_ACCOUNTS)
    if len(call.choices) == 1:
        return _read_code(call, call.choices[0])
    return replace(call, step=Step.MENU), [AskAccount(call.choices)]


def _refused(call: Call, max_pin_attempts: int) -> Outcome:
    attempts = call.attempts + 1
    call = replace(call, attempts=attempts, misses=0)
    if attempts >= max_pin_attempts:
        ended, prompts = _end(call, Ending.PIN_REFUSED)
        return ended, [NotAccepted(), *prompts]
    if call.asks_user:
        return replace(call, step=Step.USER, user=""), [NotAccepted(), AskUser()]
    return call, [NotAccepted(), AskPin()]


def _read_code(call: Call, choice: Choice) -> Outcome:
    read = replace(
        call, step=Step.AFTER_CODE, account=choice.account, codes_read=call.codes_read + 1, misses=0
    )
    return read, [ReadCode(choice), AskNext(more_accounts=len(call.choices) > 1)]


def _ask_again_or_end(call: Call, said: Prompt | None) -> Outcome:
    """Silence or a wrong key: ask once more, then hang up, saying why (the last miss)."""
    if call.misses >= 1:
        ending = Ending.NO_INPUT if said is None else Ending.NO_CHOICE
        if call.codes_read:
            ending = Ending.DONE
        ended, prompts = _end(call, ending)
        return ended, [said, *prompts] if said else prompts
    silent = said is None  # a wrong key is answered by `said`; silence by asking "again"
    again: Prompt
    match call.step:
        case Step.USER:
            again = AskUser(again=silent)
        case Step.PIN:
            again = AskPin(again=silent)
        case Step.MENU:
            again = AskAccount(call.choices, again=silent)
        case _:
            again = AskNext(more_accounts=len(call.choices) > 1, again=silent)
    missed = replace(call, misses=call.misses + 1)
    return missed, [said, again] if said else [again]


def _end(call: Call, ending: Ending) -> Outcome:
    return replace(call, step=Step.ENDED), [Goodbye(ending)]


def _pick(choices: tuple[Choice, ...], keys: Keys) -> Choice | None:
    """The menu entry for a key press ("2") or a spoken name ("github")."""
    if keys.digits.isdigit() and 1 <= int(keys.digits) <= len(choices):
        return choices[int(keys.digits) - 1]
    for heard in keys.speech:
        words = heard.casefold().split()
        for choice in choices:
            if choice.label.casefold() in heard.casefold() or choice.account in words:
                return choice
    return None


def outcome(call: Call) -> str:
    """How a call that the caller hung up on ended, for metrics."""
    return Ending.DONE if call.codes_read else "abandoned"
