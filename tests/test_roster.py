"""The roster file (directory.json) as the daemon sees it while the CLI, another process,
changes it."""

import time
from pathlib import Path

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
