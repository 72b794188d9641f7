"""The call flow as transcripts: events in, the words a caller hears out, top to bottom."""

from totpd.catalogues import find
from totpd.config import CallConfig
from totpd.emulator import plain_text
from totpd.flow import (
    Call,
    Choice,
    Ending,
    Event,
    Goodbye,
    Keys,
    PinChecked,
    PinVerdict,
    Prompt,
    ReadCode,
    Silence,
    Step,
    UserEntered,
    start,
    step,
)
from totpd.ncco import SayCode, Speakable, render
from totpd.otp import Reading

GITHUB = Choice("github", "GitHub")
GMAIL = Choice("gmail", "Gmail")
ACCEPTED_ONE = PinChecked(PinVerdict.ACCEPTED, (GITHUB,))
ACCEPTED_TWO = PinChecked(PinVerdict.ACCEPTED, (GMAIL, GITHUB))
WRONG = PinChecked(PinVerdict.WRONG)
LOCKED = PinChecked(PinVerdict.LOCKED)
CONFIG = CallConfig()
ENGLISH = find("en-GB")


def heard(prompts: list[Prompt], call: Call) -> str:
    """What the caller hears before the line waits, with codes resolved as the shell would."""
    resolved: list[Speakable] = [
        SayCode(p.choice.label, Reading("123456", 20)) if isinstance(p, ReadCode) else p
        for p in prompts
    ]
    ncco = render(resolved, call.step, "https://x.test", CONFIG, ENGLISH)
    if call.step is not Step.ENDED:
        ncco = ncco[:-1]  # the safety-net goodbye, heard only if a webhook fails
    return " ".join(plain_text(a["text"]) for a in ncco if a["action"] == "talk")


def transcript(sole_user: str | None, events: list[Event], max_attempts: int = 3) -> list[str]:
    call, prompts = start("uuid-1", "447700900001", sole_user)
    lines = [heard(list(prompts), call)]
    for event in events:
        call, prompts = step(call, event, max_attempts)
        lines.append(heard(list(prompts), call))
    lines.append(f"[{call.step}]")
    return lines


def test_the_greeting_depends_only_on_the_first_step_and_the_language() -> None:
    """The web layer renders each greeting once, keyed by the step the call starts at and the
    language it starts in."""
    greetings: dict[tuple[Step, str], list[Prompt]] = {}
    starts: list[tuple[str, str, str | None, str]] = [
        ("u1", "447700900001", "alice", ""),
        ("u2", "", "", ""),
        ("u3", "447700900001", "alice", "de-DE"),
        ("u4", "447700900002", None, ""),
        ("u5", "", None, ""),
    ]
    for uuid, caller, sole_user, language in starts:
        call, prompts = start(uuid, caller, sole_user, language)
        assert greetings.setdefault((call.step, call.language), prompts) == prompts
    assert set(greetings) == {(Step.USER, ""), (Step.PIN, ""), (Step.PIN, "de-DE")}


def test_a_call_takes_the_users_language_only_once_the_pin_is_accepted() -> None:
    call, _ = start("uuid-1", "447700900001", None)
    for event in (UserEntered("bob"), WRONG, UserEntered("bob")):
        call, _ = step(call, event, 3)
        assert call.language == ""  # the default: nothing tells the caller whose number it is
    call, _ = step(call, PinChecked(PinVerdict.ACCEPTED, (GMAIL,), "fr-FR"), 3)
    assert call.language == "fr-FR"


def test_a_sole_users_call_is_in_their_language_from_the_start() -> None:
    call, _ = start("uuid-1", "447700900001", "alice", "de-DE")
    assert call.language == "de-DE"
    call, _ = step(call, WRONG, 3)
    assert call.language == "de-DE"


def test_one_user_one_account_goes_straight_to_the_code() -> None:
    assert transcript("alice", [ACCEPTED_ONE, Keys("1"), Silence(), Silence()]) == [
        "Welcome. Please enter your PIN, then press hash.",
        "Your GitHub code is: 1 2 3 4 5 6. Again: 1 2 3 4 5 6. It is valid for 20 seconds."
        " Press 1 to hear a fresh code, or hang up.",
        "Your GitHub code is: 1 2 3 4 5 6. Again: 1 2 3 4 5 6. It is valid for 20 seconds."
        " Press 1 to hear a fresh code, or hang up.",
        "I did not get that. Press 1 to hear a fresh code, or hang up.",
        "Goodbye.",
        "[ended]",
    ]


def test_menu_by_key_then_another_account() -> None:
    lines = transcript("alice", [ACCEPTED_TWO, Keys("2"), Keys("2"), Keys("1")])
    assert lines[1] == "For Gmail, press 1. For GitHub, press 2."
    assert lines[2].startswith("Your GitHub code is: 1 2 3 4 5 6.")
    assert lines[2].endswith("Press 1 to hear a fresh code, 2 for another account, or hang up.")
    assert lines[3] == "For Gmail, press 1. For GitHub, press 2."
    assert lines[4].startswith("Your Gmail code is")
    assert lines[-1] == "[next]"


def test_menu_by_spoken_name() -> None:
    lines = transcript("alice", [ACCEPTED_TWO, Keys("", ("github please",))])
    assert lines[2].startswith("Your GitHub code is")


def test_three_wrong_pins_end_the_call() -> None:
    assert transcript("alice", [WRONG, LOCKED, WRONG]) == [
        "Welcome. Please enter your PIN, then press hash.",
        "That PIN was not accepted. Please enter your PIN, then press hash.",
        "That PIN was not accepted. Please enter your PIN, then press hash.",
        "That PIN was not accepted. Goodbye.",
        "[ended]",
    ]


def test_a_duress_pin_is_one_more_wrong_pin_to_the_call() -> None:
    duress = PinChecked(PinVerdict.DURESS)
    assert transcript("alice", [duress, WRONG, duress]) == transcript("alice", [WRONG] * 3)
    assert transcript("alice", [duress, ACCEPTED_ONE])[2].startswith("Your GitHub code is")
    assert transcript(None, [UserEntered("bob"), duress])[-2] == (
        "That PIN was not accepted. Please enter your user number, then press hash."
    )


def test_attempt_cap_is_configurable() -> None:
    assert transcript("alice", [WRONG], max_attempts=1)[-2:] == [
        "That PIN was not accepted. Goodbye.",
        "[ended]",
    ]


def test_silence_reprompts_once_then_goodbye() -> None:
    assert transcript("alice", [Silence(), Silence()]) == [
        "Welcome. Please enter your PIN, then press hash.",
        "I did not get that. Please enter your PIN, then press hash.",
        "I did not hear anything. Goodbye.",
        "[ended]",
    ]


def test_several_users_ask_for_the_user_number_first() -> None:
    lines = transcript(None, [UserEntered("bob"), WRONG, UserEntered("bob"), ACCEPTED_ONE])
    assert lines[0] == "Welcome. Please enter your user number, then press hash."
    assert lines[1] == "Please enter your PIN, then press hash."
    # A refusal goes back to the user number, in case that was the mistake.
    assert lines[2] == "That PIN was not accepted. Please enter your user number, then press hash."
    assert lines[4].startswith("Your GitHub code is")


def test_wrong_menu_key_twice_is_not_an_option_then_goodbye() -> None:
    assert transcript("alice", [ACCEPTED_TWO, Keys("7"), Keys("9")]) == [
        "Welcome. Please enter your PIN, then press hash.",
        "For Gmail, press 1. For GitHub, press 2.",
        "That is not an option. For Gmail, press 1. For GitHub, press 2.",
        "That is not an option. Goodbye.",
        "[ended]",
    ]


def test_an_unknown_spoken_name_after_silence_is_not_an_option_then_goodbye() -> None:
    lines = transcript("alice", [ACCEPTED_TWO, Silence(), Keys("", ("weather please",))])
    assert lines[2] == "I did not get that. For Gmail, press 1. For GitHub, press 2."
    assert lines[3:] == ["That is not an option. Goodbye.", "[ended]"]


def test_silence_after_a_wrong_key_is_not_heard_then_goodbye() -> None:
    lines = transcript("alice", [ACCEPTED_TWO, Keys("7"), Silence()])
    assert lines[3:] == ["I did not hear anything. Goodbye.", "[ended]"]


def test_a_call_ended_by_wrong_keys_has_its_own_outcome() -> None:
    call, _ = start("uuid-1", "447700900001", "alice")
    for event in (ACCEPTED_TWO, Keys("7"), Keys("9")):
        call, prompts = step(call, event, 3)
    assert prompts[-1] == Goodbye(Ending.NO_CHOICE)


def test_no_accounts_assigned() -> None:
    lines = transcript("alice", [PinChecked(PinVerdict.ACCEPTED, ())])
    assert lines[1:] == ["There are no accounts for you. Goodbye.", "[ended]"]


def test_every_refusal_sounds_the_same() -> None:
    said = {
        verdict: transcript("alice", [PinChecked(verdict)])[1]
        for verdict in PinVerdict
        if verdict is not PinVerdict.ACCEPTED
    }
    assert len(set(said.values())) == 1


def test_one_second_is_said_in_the_singular() -> None:
    code = SayCode("GitHub", Reading("123456", 1, wait_s=1))
    spoken = render([code], Step.ENDED, "", CONFIG, ENGLISH)
    said = plain_text(spoken[0]["text"])
    assert "The new code starts in 1 second. Your GitHub code is" in said
    assert said.endswith("It is valid for 1 second.")
