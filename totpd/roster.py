"""The roster: enrolled accounts (not their secrets) and users, in one JSON file, `directory.json`.

The admin CLI and the daemon both write it (PIN rehash, HOTP counters), so every change is a
read-modify-write under an exclusive file lock, and every write is atomic. A file that cannot
be read or written (a full disk, a planted symlink) is a StorageError naming it.
"""

import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from totpd.errors import RosterError, StorageError
from totpd.files import FileVersion, file_version, open_lock, read_file, write_atomic
from totpd.otp import Account, Kind
from totpd.printable import strip_unprintable
from totpd.users import User

ROSTER_FILE = "directory.json"  # its name on disk since the first release
FORMAT_VERSION = 1

log = logging.getLogger("totpd.roster")


@dataclass(frozen=True)
class Roster:
    """Accounts and users, keyed by name (insertion order is enrolment order)."""

    accounts: dict[str, Account] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)

    def user_by_number(self, number: int) -> User | None:
        """The user whose keypad number is `number`, if any."""
        return next((u for u in self.users.values() if u.number == number), None)

    def with_account(self, account: Account) -> "Roster":
        """A copy with `account` added or replaced."""
        return replace(self, accounts={**self.accounts, account.name: account})

    def with_user(self, user: User) -> "Roster":
        """A copy with `user` added or replaced, after checking its accounts and number."""
        unknown = [a for a in user.accounts if a not in self.accounts]
        if unknown:
            raise RosterError(f"unknown account(s): {', '.join(unknown)}")
        clash = self.user_by_number(user.number)
        if clash is not None and clash.name != user.name:
            raise RosterError(f"user number {user.number} belongs to {clash.name!r}")
        return replace(self, users={**self.users, user.name: user})

    def next_user_number(self) -> int:
        """The smallest keypad number not yet taken."""
        taken = {u.number for u in self.users.values()}
        return next(n for n in range(1, len(taken) + 2) if n not in taken)


# A user's fields that are left out while unset, so that a directory without a duress PIN
# stays readable by a totpd from before there were any (a downgrade, an older backup reader).
_UNSET_USER_FIELDS = {"duress_hash": "", "duress_freezes": False}


def _user(user: User) -> dict[str, Any]:
    fields = asdict(user)
    for name, unset in _UNSET_USER_FIELDS.items():
        if fields[name] == unset:
            del fields[name]
    return fields


def encode(roster: Roster) -> bytes:
    """The roster file's bytes (also the roster part of a backup)."""
    document = {
        "version": FORMAT_VERSION,
        "accounts": [asdict(a) for a in roster.accounts.values()],
        "users": [_user(u) for u in roster.users.values()],
    }
    return json.dumps(document, indent=2).encode()


def _account(fields: dict[str, Any], path: Path) -> Account:
    """An account as stored. A spoken label from before labels were checked loses its
    unprintable characters here, with a warning: refusing the file would silence every user."""
    label = fields["label"]
    cleaned = " ".join(strip_unprintable(label).split()) or fields["name"]
    account = Account(**{**fields, "label": cleaned, "kind": Kind(fields["kind"])})
    if cleaned != label:
        log.warning(
            "%s: account %s: unprintable characters removed from its spoken label, now %r;"
            " the next change to the directory saves it",
            path,
            account.name,
            account.label,
        )
    return account


def decode(raw: bytes, path: Path) -> Roster:
    """The inverse of `encode`; RosterError naming `path` when the bytes are not a roster."""
    try:
        document: dict[str, Any] = json.loads(raw)
        if document.get("version") != FORMAT_VERSION:
            raise RosterError(f"{path}: unsupported format version")
        accounts = [_account(fields, path) for fields in document["accounts"]]
        users = [
            User(**{**u, "accounts": tuple(u["accounts"]), "callers": tuple(u["callers"])})
            for u in document["users"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise RosterError(f"{path}: corrupted directory file ({type(exc).__name__})") from None
    return Roster({a.name: a for a in accounts}, {u.name: u for u in users})


class RosterFile:
    """The roster on disk, re-read whenever another process has replaced it."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / ROSTER_FILE
        self._lock_path = state_dir / f".{ROSTER_FILE}.lock"
        self._cached: Roster = Roster()
        self._cached_version: FileVersion | None = None
        self._checked_s = -math.inf  # time.monotonic() of the last stat

    def current(self, max_age_s: float = 0.0) -> Roster:
        """The roster as on disk now: a stat per call, a re-read only when it changed.

        A caller content with a view up to `max_age_s` old skips the stat while the last one
        is that recent.
        """
        now_s = time.monotonic()
        if now_s - self._checked_s < max_age_s:
            return self._cached
        try:
            now = file_version(self.path)
            if now != self._cached_version:
                self._cached = Roster() if now is None else decode(read_file(self.path), self.path)
                self._cached_version = now
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot read: {exc.strerror}") from None
        self._checked_s = now_s
        return self._cached

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = open_lock(self._lock_path)
        except OSError as exc:
            raise StorageError(f"{self._lock_path}: cannot open: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(self, change: Callable[[Roster], Roster]) -> Roster:
        """Apply `change` to the current roster under the lock and save the result.

        StorageError when it cannot be saved: the file on disk is then unchanged.
        """
        with self._locked():
            self._cached_version = None  # force a fresh read under the lock
            updated = change(self.current())
            try:
                write_atomic(self.path, encode(updated))
                version = file_version(self.path)
            except OSError as exc:
                raise StorageError(f"{self.path}: cannot write: {exc.strerror}") from None
            self._cached, self._cached_version = updated, version
            return updated
