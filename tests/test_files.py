"""Files in the state directory are opened without following a link or waiting on a FIFO.

Root's commands already run as the directory's owner (tests/cli/test_root.py); this is the
second line: whoever runs totpd, a name planted in the state directory is refused with an
error that says why, and nothing outside the directory is read, written or created.
"""

import asyncio
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from totpd.admin.password import AdminPassword
from totpd.config import Config
from totpd.errors import TotpdError
from totpd.roster import RosterFile
from totpd.secrets.key import locate_key
from totpd.secrets.vault import VaultKeyring
from totpd.state.journal import JournalWindows

OUTSIDE = b"a file outside the state directory\n"
NOBODY_ID = 65534


def _read_roster(config: Config) -> object:
    return RosterFile(config.paths.state_dir).current()


def _write_roster(config: Config) -> object:
    return RosterFile(config.paths.state_dir).update(lambda roster: roster)


def _read_journal(config: Config) -> object:
    return asyncio.run(JournalWindows(config.paths.state_dir, "global", 60).keys())


def _count_attempt(config: Config) -> object:
    journal = JournalWindows(config.paths.state_dir, "global", 60)
    return asyncio.run(journal.acquire_entry("caller", 10, 60))


def _read_vault(config: Config) -> object:
    vault = VaultKeyring(config.paths.state_dir / "vault.bin", secrets.token_bytes(32))
    return vault.get_password("totpd", "seed:github")


def _read_admin_password(config: Config) -> object:
    return AdminPassword(config.paths.state_dir, config.pins).is_set()


def _read_vault_key(config: Config) -> object:
    return locate_key(config)


# Each name totpd uses in the state directory, and an operation that opens it.
OPENERS: dict[str, Callable[[Config], object]] = {
    "directory.json": _read_roster,
    ".directory.json.lock": _write_roster,
    "lockout.journal": _count_attempt,
    ".lockout.journal.lock": _read_journal,
    "vault.bin": _read_vault,
    ".vault.bin.lock": _read_vault,
    "admin-password": _read_admin_password,
    "vault.key": _read_vault_key,
}


def _refusal(config: Config, name: str) -> BaseException | None:
    """What the opener of `name` raised (None if it returned), within five seconds."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            OPENERS[name](config)
            raised.append(None)
        except (TotpdError, OSError) as exc:
            raised.append(exc)

    opener = threading.Thread(target=run, daemon=True)  # left behind if it hangs on a FIFO
    opener.start()
    opener.join(timeout=5)
    assert raised, f"{name}: still waiting after 5 s"
    return raised[0]


@pytest.mark.parametrize("name", list(OPENERS))
def test_a_symlink_planted_in_the_state_directory_is_not_followed(
    config: Config, tmp_path: Path, name: str
) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(OUTSIDE)
    missing = tmp_path / "missing"
    for target in (outside, missing):
        link = config.paths.state_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        refused = _refusal(config, name)
        assert refused is not None, f"{name} -> {target.name}: followed"
        assert "symbolic link" in str(refused)
        assert outside.read_bytes() == OUTSIDE
        assert not missing.exists(), f"{name}: created through the link"


@pytest.mark.parametrize("name", list(OPENERS))
def test_a_fifo_planted_in_the_state_directory_is_refused_at_once(
    config: Config, name: str
) -> None:
    os.mkfifo(config.paths.state_dir / name, 0o600)
    refused = _refusal(config, name)
    assert refused is not None
    assert "not a regular file" in str(refused)


@pytest.mark.root  # only root can create a file someone else owns
def test_root_using_the_library_leaves_every_file_it_creates_to_the_directory_owner(
    config: Config,
) -> None:
    # Root that did not become the owner first (the `keyring` command, say) still leaves
    # files the daemon can read, chowned by descriptor before they have their name.
    state = config.paths.state_dir
    os.chown(state, NOBODY_ID, NOBODY_ID)
    RosterFile(state).update(lambda roster: roster)
    asyncio.run(JournalWindows(state, "global", 60).acquire_entry("caller", 10, 60))
    key = locate_key(config).key  # creates vault.key
    VaultKeyring(state / "vault.bin", key).set_password("totpd", "seed:github", "JBSWY3DP")
    AdminPassword(state, config.pins).set("correct horse battery staple")
    names = {entry.name for entry in state.iterdir()}
    assert {
        "directory.json",
        "lockout.journal",
        "vault.key",
        "vault.bin",
        "admin-password",
    } <= names
    for entry in state.iterdir():
        assert (entry.lstat().st_uid, entry.lstat().st_gid) == (NOBODY_ID, NOBODY_ID), entry.name
