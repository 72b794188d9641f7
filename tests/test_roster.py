"""The roster file (directory.json) as the daemon sees it while the CLI, another process,
changes it."""

import json
import time
from pathlib import Path

import pytest

from totpd.errors import RosterError
from totpd.otp import Account
from totpd.roster import RosterFile


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
