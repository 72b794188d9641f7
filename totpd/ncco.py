"""Prompts -> a Vonage NCCO: `talk` actions in SSML, then at most one `input`.

Digits are read one at a time, in groups, slowly, and repeated; every NCCO that waits for
input ends with a spoken goodbye, which Vonage reaches only if the input callback fails.
"""

from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from totpd.config import CallConfig
from totpd.flow import (
    AskAccount,
    AskNext,
    AskPin,
    AskUser,
    Ending,
    Goodbye,
    NotAccepted,
    NotAnOption,
    Prompt,
    Step,
    Welcome,
)
from totpd.keypad import MAX_DIGITS
from totpd.otp import Reading

MAX_BREAK_S = 10  # longest single SSML <break> Vonage honours
SAFETY_NET = "Sorry, something went wrong. Goodbye."

GOODBYES = {
    Ending.DONE: "Goodbye.",
    Ending.NO_INPUT: "I did not hear anything. Goodbye.",
    Ending.PIN_REFUSED: "Goodbye.",
    Ending.NO_ACCOUNTS: "There are no accounts for you. Goodbye.",
}

NCCO = list[dict[str, Any]]


@dataclass(frozen=True)
class SayCode:
    """A code ready to be spoken: ReadCode after the shell looked up the code."""

    label: str
    reading: Reading


Speakable = Prompt | SayCode


def _pause(seconds: float) -> str:
    whole, rest = divmod(seconds, MAX_BREAK_S)
    tags = [f'<break time="{MAX_BREAK_S}s"/>'] * int(whole)
    if rest:
        tags.append(f'<break time="{rest:g}s"/>')
    return "".join(tags)


def spoken_digits(digits: str, group: int) -> str:
    """SSML for a code read digit by digit, slowly, with a pause between groups."""
    groups = [digits[i : i + group] for i in range(0, len(digits), group)]
    said = '<break time="700ms"/>'.join(
        f'<say-as interpret-as="digits">{g}</say-as>' for g in groups
    )
    return f'<prosody rate="slow">{said}</prosody>'


def _code_text(say: SayCode, config: CallConfig) -> str:
    label = escape(say.label)
    reading = say.reading
    parts = []
    if reading.wait_s:
        parts.append(
            f"Your {label} code is about to change. The new code starts in {reading.wait_s}"
            f" seconds. {_pause(reading.wait_s)}"
        )
    code = spoken_digits(reading.digits, config.digit_group)
    parts.append(f"Your {label} code is: {code}.")
    parts.extend(f'<break time="1s"/> Again: {code}.' for _ in range(config.code_repeats - 1))
    if reading.seconds_left is not None:
        parts.append(f"It is valid for {reading.seconds_left} seconds.")
    return " ".join(parts)


def _text(prompt: Speakable, config: CallConfig) -> str:
    match prompt:
        case Welcome():
            return "Welcome."
        case AskUser(again=again):
            lead = "I did not get that. " if again else ""
            return lead + "Please enter your user number, then press hash."
        case AskPin(again=again):
            lead = "I did not get that. " if again else ""
            return lead + "Please enter your PIN, then press hash."
        case NotAccepted():
            return "That PIN was not accepted."
        case NotAnOption():
            return "That is not an option."
        case AskAccount(choices=choices, again=again):
            menu = " ".join(f"For {escape(c.label)}, press {i}." for i, c in enumerate(choices, 1))
            lead = "I did not get that. " if again else ""
            return lead + menu + (" Or say its name." if config.speech_menu else "")
        case AskNext(more_accounts=more, again=again):
            lead = "I did not get that. " if again else ""
            another = ", 2 for another account," if more else ","
            return f"{lead}Press 1 to hear a fresh code{another} or hang up."
        case SayCode():
            return _code_text(prompt, config)
        case Goodbye(ending=ending):
            return GOODBYES[ending]
    raise TypeError(f"cannot speak {prompt!r}")


def _talk(ssml: str, config: CallConfig, barge_in: bool = False) -> dict[str, Any]:
    talk: dict[str, Any] = {
        "action": "talk",
        "text": f"<speak>{ssml}</speak>",
        "language": config.language,
        "style": config.voice_style,
    }
    if config.premium:
        talk["premium"] = True
    if barge_in:
        talk["bargeIn"] = True
    return talk


def _input(step: Step, prompt: Speakable, base_url: str, config: CallConfig) -> dict[str, Any]:
    multi_digit = step in (Step.USER, Step.PIN)
    action: dict[str, Any] = {
        "action": "input",
        "type": ["dtmf"],
        "dtmf": {
            "maxDigits": MAX_DIGITS if multi_digit else 1,
            "submitOnHash": multi_digit,
            "timeOut": config.input_timeout_s,
        },
        "eventUrl": [f"{base_url}/webhooks/input/{step}"],
        "eventMethod": "POST",
    }
    if config.speech_menu and isinstance(prompt, AskAccount):
        action["type"] = ["dtmf", "speech"]
        action["speech"] = {
            "context": [c.label for c in prompt.choices],
            "language": config.language,
            "endOnSilence": 1.5,
            "startTimeout": config.input_timeout_s,
            "maxDuration": 10,
        }
    return action


def render(prompts: list[Speakable], step: Step, base_url: str, config: CallConfig) -> NCCO:
    """The NCCO for `prompts`; the call then waits for input at `step` unless it ended.

    What is told (a code, a refusal) plays in full; only the final question may be cut short
    by a key press, and it is followed by the input and the safety-net goodbye.
    """
    if step is Step.ENDED:
        return [_talk(" ".join(_text(p, config) for p in prompts), config)]
    *told, asked = prompts
    ncco = [_talk(" ".join(_text(p, config) for p in told), config)] if told else []
    ncco += [
        _talk(_text(asked, config), config, barge_in=True),
        _input(step, asked, base_url, config),
        _talk(SAFETY_NET, config),
    ]
    return ncco
