"""Prompts -> a Vonage NCCO: `talk` actions in SSML, then at most one `input`.

The words come from a prompt catalogue (totpd.catalogues), in the language of the call; this
module adds what every language shares: codes read one character at a time, in groups,
slowly, and repeated; pauses; and a spoken goodbye at the end of every NCCO that waits for
input, which Vonage reaches only if the input callback fails.
"""

from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from totpd.catalogues import Catalogue
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
CHARACTER_BREAK = '<break time="700ms"/>'  # between groups of digits, and between characters

GOODBYES = {  # the catalogue's prompt for each way a call ends
    Ending.DONE: "goodbye",
    Ending.NO_INPUT: "goodbye_no_input",
    Ending.NO_CHOICE: "goodbye",  # after "That is not an option."
    Ending.PIN_REFUSED: "goodbye",
    Ending.NO_ACCOUNTS: "goodbye_no_accounts",
    Ending.CLOCK_UNTRUSTED: "goodbye_clock",
}

NCCO = list[dict[str, Any]]

# Letters of Steam codes that a phone line blurs into another (the "ee" set, J/K, M/N, F/X,
# and H against 8) are said with a word of the NATO alphabet; the others are clear alone.
SPELLING = {
    "B": "Bravo", "C": "Charlie", "D": "Delta", "G": "Golf", "P": "Papa", "T": "Tango",
    "V": "Victor", "J": "Juliett", "K": "Kilo", "M": "Mike", "N": "November", "F": "Foxtrot",
    "X": "X-ray", "H": "Hotel",
}  # fmt: skip


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
    """SSML for a code read digit by digit, slowly, with a pause between groups.

    The voice says each digit in its own language: the SSML is the same in every one.
    """
    groups = [digits[i : i + group] for i in range(0, len(digits), group)]
    said = CHARACTER_BREAK.join(f'<say-as interpret-as="digits">{g}</say-as>' for g in groups)
    return f'<prosody rate="slow">{said}</prosody>'


def spoken_characters(code: str, words: Catalogue) -> str:
    """SSML for a code with letters (Steam's), one character at a time, slowly, each letter
    with its word from the catalogue's spelling alphabet ("B as in Bravo", "B wie Berlin")."""
    said = []
    for char in code:
        if char.isdigit():
            said.append(f'<say-as interpret-as="digits">{char}</say-as>')
        else:
            letter = f'<say-as interpret-as="characters">{escape(char)}</say-as>'
            spelled = char.upper() in words.spelling
            said.append(
                words.say("spelled", letter=letter, word=words.spell(char)) if spelled else letter
            )
    return f'<prosody rate="slow">{CHARACTER_BREAK.join(said)}</prosody>'


def spoken_code(code: str, group: int, words: Catalogue) -> str:
    """SSML for a code: digits in groups of `group`, a code with letters character by character."""
    return spoken_digits(code, group) if code.isdigit() else spoken_characters(code, words)


def _code_text(say: SayCode, config: CallConfig, words: Catalogue) -> str:
    label = escape(say.label)
    reading = say.reading
    parts = []
    if reading.wait_s:
        waiting = words.say("code_changing", label=label, seconds=words.seconds(reading.wait_s))
        parts.append(f"{waiting} {_pause(reading.wait_s)}")
    code = spoken_code(reading.digits, config.digit_group, words)
    parts.append(words.say("code_is", label=label, code=code))
    again = words.say("code_again", code=code)
    parts.extend(f'<break time="1s"/> {again}' for _ in range(config.code_repeats - 1))
    if reading.seconds_left is not None:
        parts.append(words.say("code_valid", seconds=words.seconds(reading.seconds_left)))
    return " ".join(parts)


def _text(prompt: Speakable, config: CallConfig, words: Catalogue) -> str:
    match prompt:
        case Welcome():
            return words.say("welcome")
        case AskUser(again=again):
            return _again(again, words) + words.say("ask_user")
        case AskPin(again=again):
            return _again(again, words) + words.say("ask_pin")
        case NotAccepted():
            return words.say("pin_refused")
        case NotAnOption():
            return words.say("not_an_option")
        case AskAccount(choices=choices, again=again):
            menu = " ".join(
                words.say("menu_item", label=escape(c.label), key=str(i))
                for i, c in enumerate(choices, 1)
            )
            speech = " " + words.say("menu_speech") if config.speech_menu else ""
            return _again(again, words) + menu + speech
        case AskNext(more_accounts=more, again=again):
            return _again(again, words) + words.say("ask_next_more" if more else "ask_next")
        case SayCode():
            return _code_text(prompt, config, words)
        case Goodbye(ending=ending):
            return words.say(GOODBYES[ending])
    raise TypeError(f"cannot speak {prompt!r}")


def _again(again: bool, words: Catalogue) -> str:
    """What leads a question asked again after silence ("I did not get that. ")."""
    return words.say("not_heard") + " " if again else ""


def _talk(
    ssml: str, config: CallConfig, words: Catalogue, barge_in: bool = False
) -> dict[str, Any]:
    # Voice styles are numbered per language: the configured one (and premium) belong to
    # call.language. Every other language speaks in its style 0, which Vonage has for each.
    configured_voice = words.tag == config.language
    talk: dict[str, Any] = {
        "action": "talk",
        "text": f"<speak>{ssml}</speak>",
        "language": words.tag,
        "style": config.voice_style if configured_voice else 0,
    }
    if config.premium and configured_voice:
        talk["premium"] = True
    if barge_in:
        talk["bargeIn"] = True
    return talk


def _input(
    step: Step, prompt: Speakable, base_url: str, config: CallConfig, words: Catalogue
) -> dict[str, Any]:
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
            "language": words.tag,
            "endOnSilence": 1.5,
            "startTimeout": config.input_timeout_s,
            "maxDuration": 10,
        }
    return action


def render(
    prompts: list[Speakable], step: Step, base_url: str, config: CallConfig, words: Catalogue
) -> NCCO:
    """The NCCO for `prompts`, in the language of `words`; the call then waits for input at
    `step` unless it ended.

    What is told (a code, a refusal) plays in full; only the final question may be cut short
    by a key press, and it is followed by the input and the safety-net goodbye.
    """
    if step is Step.ENDED:
        return [_talk(" ".join(_text(p, config, words) for p in prompts), config, words)]
    *told, asked = prompts
    ncco = [_talk(" ".join(_text(p, config, words) for p in told), config, words)] if told else []
    ncco += [
        _talk(_text(asked, config, words), config, words, barge_in=True),
        _input(step, asked, base_url, config, words),
        _talk(words.say("safety_net"), config, words),
    ]
    return ncco
