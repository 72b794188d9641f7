"""The `totpd` entry point itself: what every command shares, whatever it does."""

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import enrol_demo
from totpd.config import Config
from totpd.roster import Roster, RosterFile

EXIT_SIGPIPE = 128 + signal.SIGPIPE  # what a shell reports for a writer killed by SIGPIPE


def _run_into_closed_pipe(config_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run `totpd` with its standard output on a pipe whose reader has already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "totpd", "--config", str(config_path), *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("user", "list"),
        ("account", "list"),
        ("check-config",),
        ("unlock",),
    ],
)
def test_a_reader_that_has_gone_ends_the_command_quietly(
    config_path: Path, config: Config, command: tuple[str, ...]
) -> None:
    enrol_demo(config)
    done = _run_into_closed_pipe(config_path, *command)
    for noise in (b"Traceback", b"Broken pipe", b"Exception ignored"):
        assert noise not in done.stderr
    assert done.returncode == EXIT_SIGPIPE


def test_a_long_listing_piped_into_head_ends_quietly(config_path: Path, config: Config) -> None:
    # More lines than a pipe holds, so `head` leaves while totpd is still writing.
    enrol_demo(config)
    alice = RosterFile(config.paths.state_dir).current().users["alice"]

    def many(roster: Roster) -> Roster:
        users = {f"user{n}": replace(alice, name=f"user{n}", number=n) for n in range(1, 5001)}
        return replace(roster, users=users)

    RosterFile(config.paths.state_dir).update(many)
    totpd = f"{sys.executable} -m totpd --config {config_path}"
    done = subprocess.run(
        ["bash", "-c", f"{totpd} user list | head -1; echo ${{PIPESTATUS[0]}}"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.stderr == b""
    assert (
        done.stdout
        == f"user1\t1\tgithub\tany\ten-GB (default)\tduress: no\n{EXIT_SIGPIPE}\n".encode()
    )
