"""Phone numbers in allowlists: one form (E.164 digits, no "+") on the way in, when stored,
when compared; anything that is not a phone number is refused with the rule it breaks."""

import json
from pathlib import Path

import pytest

from tests.helpers import CALLER, GITHUB_SEED, PIN, Vonage, run_totpd, spoken
from totpd.roster import RosterFile
from totpd.services import Services
from totpd.users import User

# CALLER is 447700900001: every spelling below is that number.
SPELLINGS = [
    "+447700900001",
    "447700900001",
    "+44 7700 900001",
    " +44 7700 900001 ",
    "+44-7700-900-001",
    "+44.7700.900.001",
    "+44 (7700) 900001",
]


@pytest.mark.parametrize("written", SPELLINGS)
def test_every_spelling_of_a_number_is_stored_as_e164_digits(written: str) -> None:
    user = User("alice", 1, "hash", (), (written,))
    assert user.callers == (CALLER,)
    assert user.allows(CALLER)


@pytest.mark.parametrize(
    ("written", "rule"),
    [
        ("0044 7700 900001", "international form"),  # an international prefix, not a "+"
        ("07700 900001", "international form"),  # a national number
        ("+44 (0)7700 900001", "(0)"),  # the trunk 0 in brackets would become a digit
        ("+44 7700 9000O1", "not a phone number"),  # a letter O for a zero
        ("sip:alice@example.com", "not a phone number"),
        ("withheld", "withheld"),
        ("anonymous", "not a phone number"),
        ("+", "not a phone number"),
        ("+44 77", "7 to 15 digits"),
        ("+44 7700 9000 0100 01", "7 to 15 digits"),
        ("+٤٤٧٧٠٠٩٠٠٠٠١", "not a phone number"),  # Arabic-Indic digits are not keypad digits
    ],
)
def test_a_caller_that_is_not_a_phone_number_is_refused_and_nothing_is_stored(
    config_path: Path, written: str, rule: str
) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    refused = run_totpd(
        config_path,
        *("user", "add", "alice", "--accounts", "github", "--callers", f"{written},+447700900002"),
        stdin=f"{PIN}\n",
    )
    assert refused.returncode == 1, refused.stdout
    assert rule in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1  # one clear line, no traceback
    assert run_totpd(config_path, "user", "list").stdout == ""


@pytest.mark.parametrize("callers", ["", ",", "+447700900001,,+447700900002", " , "])
def test_an_empty_allowlist_entry_is_refused_rather_than_read_as_any_number(
    config_path: Path, callers: str
) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    refused = run_totpd(
        config_path,
        *("user", "add", "alice", "--accounts", "github", "--callers", callers),
        stdin=f"{PIN}\n",
    )
    assert refused.returncode == 1
    assert "empty" in refused.stderr
    assert run_totpd(config_path, "user", "list").stdout == ""


def test_an_allowlist_written_with_a_plus_lets_its_own_user_in(config_path: Path) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    added = run_totpd(
        config_path,
        *("user", "add", "alice", "--accounts", "github", "--callers", "+44 7700 900001"),
        stdin=f"{PIN}\n",
    )
    assert added.returncode == 0, added.stderr
    assert "alice\t1\tgithub\t+447700900001" in run_totpd(config_path, "user", "list").stdout
    stored = json.loads((config_path.parent / "state" / "directory.json").read_text())
    assert stored["users"][0]["callers"] == [CALLER]


async def test_a_call_from_a_number_listed_with_a_plus_hears_its_code(
    caller: Vonage, services: Services
) -> None:
    from dataclasses import replace

    services.roster.update(
        lambda r: r.with_user(replace(r.users["alice"], callers=("+44 7700 900001",)))
    )
    await caller.answer(caller="+447700900001")  # Vonage sends no "+", but a proxy might
    _, ncco = await caller.press("pin", PIN)
    assert "Your GitHub code is" in spoken(ncco)


async def test_a_directory_written_before_normalisation_keeps_working(
    caller: Vonage, services: Services
) -> None:
    path = services.config.paths.state_dir / "directory.json"
    document = json.loads(path.read_text())
    document["users"][0]["callers"] = ["+44 7700 900001"]  # as an older `user add` stored it
    path.write_text(json.dumps(document))
    assert RosterFile(path.parent).current().users["alice"].callers == (CALLER,)
    await caller.answer()
    _, ncco = await caller.press("pin", PIN)
    assert "Your GitHub code is" in spoken(ncco)


def test_a_stored_entry_that_is_no_number_matches_no_call_and_is_reported(
    config_path: Path,
) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    run_totpd(config_path, "user", "add", "alice", "--accounts", "github", stdin=f"{PIN}\n")
    path = config_path.parent / "state" / "directory.json"
    document = json.loads(path.read_text())
    document["users"][0]["callers"] = ["withheld"]  # an older `user add` took anything
    path.write_text(json.dumps(document))
    user = RosterFile(path.parent).current().users["alice"]
    assert not user.allows(CALLER)  # never read as "any number"
    assert not user.allows("")
    checked = run_totpd(config_path, "check-config")
    assert checked.returncode == 0, checked.stderr
    assert "user alice: caller allowlist entry 'withheld' is not a phone number" in checked.stderr
    fixed = run_totpd(config_path, "user", "callers", "alice", "+44 7700 900001")
    assert fixed.returncode == 0, fixed.stderr
    assert RosterFile(path.parent).current().users["alice"].callers == (CALLER,)
    assert "not a phone number" not in run_totpd(config_path, "check-config").stderr
