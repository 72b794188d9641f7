"""The roster file (directory.json) as the daemon sees it while the CLI, another process,
changes it."""

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from totpd.errors import RosterError
from totpd.otp import Account
from totpd.roster import ROSTER_FILE, RosterFile


def add_account(roster: RosterFile, name: str) -> None:
    roster.update(lambda d: d.with_account(Account(name, name.title())))


def test_a_change_from_another_process_is_seen_at_once(tmp_path: Path) -> None:
    daemon, cli = RosterFile(tmp_path), RosterFile(tmp_path)
    assert daemon.current().accounts == {}
    add_account(cli, "github")
    assert list(daemon.current().accounts) == ["github"]


def test_a_view_allowed_to_be_old_is_reused_then_refreshed(tmp_path: Path) -> None:
    daemon, cli = RosterFile(tmp_path), RosterFile(tmp_path)
    assert daemon.current(max_age_s=30).accounts == {}
    add_account(cli, "github")
    assert daemon.current(max_age_s=30).accounts == {}  # no stat: the last one is that recent
    time.sleep(0.3)
    assert list(daemon.current(max_age_s=0.2).accounts) == ["github"]  # older: looked again
    add_account(cli, "gmail")
    assert list(daemon.current().accounts) == ["github", "gmail"]  # wanted now: looked now


def test_a_change_made_by_the_daemon_itself_is_seen_at_once(tmp_path: Path) -> None:
    daemon = RosterFile(tmp_path)
    assert daemon.current(max_age_s=60).accounts == {}
    add_account(daemon, "github")
    assert list(daemon.current(max_age_s=60).accounts) == ["github"]


def test_a_directory_file_with_an_unprintable_label_is_cleaned_on_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A label enrolled before labels were checked: the phone line keeps working."""
    accounts = [
        {**asdict(Account("github", "GitHub")), "label": "Git\x1b[2JHub\u202e"},
        {**asdict(Account("gmail", "Gmail")), "label": "\x00\u200b"},
        asdict(Account("bank", "Bank")),
    ]
    document = {"version": 1, "accounts": accounts, "users": []}
    (tmp_path / ROSTER_FILE).write_text(json.dumps(document))
    with caplog.at_level(logging.WARNING):
        roster = RosterFile(tmp_path).current()
    labels = {name: account.label for name, account in roster.accounts.items()}
    assert labels == {"github": "Git[2JHub", "gmail": "gmail", "bank": "Bank"}
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert all(line.isprintable() for line in warned)
    assert "account github: unprintable characters removed from its spoken label" in warned[0]
    assert "account gmail" in warned[1]


def test_a_directory_from_before_languages_loads_with_the_default(tmp_path: Path) -> None:
    old = {
        "version": 1,
        "accounts": [],
        "users": [{"name": "alice", "number": 1, "pin_hash": "x", "accounts": [], "callers": []}],
    }
    (tmp_path / "directory.json").write_text(json.dumps(old))
    assert RosterFile(tmp_path).current().users["alice"].language == ""  # call.language's


def test_a_language_without_a_catalogue_in_the_directory_is_named(tmp_path: Path) -> None:
    user = {"name": "alice", "number": 1, "pin_hash": "x", "accounts": [], "callers": []}
    document = {"version": 1, "accounts": [], "users": [{**user, "language": "tlh"}]}
    (tmp_path / "directory.json").write_text(json.dumps(document))
    with pytest.raises(RosterError) as caught:
        RosterFile(tmp_path).current()
    assert str(caught.value).startswith("user alice: no prompts in language 'tlh'; totpd speaks")
