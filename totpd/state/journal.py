"""The embedded lockout storage: moving windows of PIN attempts, in a journal file.

`limits` owns the windows' logic; this is a storage for its moving-window strategy, held in
memory and backed by an append-only journal, `lockout.journal`, one JSON record per line:

    {"op": "hit", "key": K, "at": T, "ttl": S}         an attempt counted in window K at time T
    {"op": "release", "key": K, "from": T0, "to": T1}  a correct PIN gave its attempt back
    {"op": "clear", "key": K}                           `totpd unlock` of one window
    {"op": "clear_all"}                                 `totpd unlock` of everything

A record is fsynced before its operation returns, so an attempt is on disk before its PIN is
checked: neither a restart nor a kill -9 hands an attacker a fresh window. Every operation
holds an exclusive `flock` and first replays what other processes appended (the admin CLI),
so `totpd unlock` takes effect at the daemon's next PIN without a signal. In memory there is
only ever the replay of the file. When dead records pile up the journal is rewritten with the
live entries alone (atomically: a reader sees the old file or the new one).

Damage errs towards a lockout: a record that cannot be read counts as an attempt in the
global window, and a timestamp from the future (a clock set back) counts as now.
"""

import asyncio
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from limits.aio.storage import MovingWindowSupport, Storage

from totpd.files import write_atomic

JOURNAL_FILE = "lockout.journal"
COMPACT_AFTER_RECORDS = 1024
RELEASED_SLACK_S = 0.001  # a release names its attempt by a time range; allow for rounding

log = logging.getLogger("totpd.lockout")

T = TypeVar("T")


@dataclass
class _Window:
    """The attempts on record for one key, oldest first, and how long each one counts."""

    ttl_s: int
    times: list[float] = field(default_factory=list)

    def live(self, now_s: float, expiry_s: int) -> list[float]:
        return [t for t in self.times if t > now_s - expiry_s]


class JournalWindows(Storage, MovingWindowSupport):
    """The lockout's WindowStore persisted in `<state_dir>/lockout.journal`; also the `limits`
    moving-window storage itself.

    `global_key` and `global_ttl_s` name the global window: an unreadable record counts there.
    """

    STORAGE_SCHEME = None  # built by totpd, not from a limits storage URI

    def __init__(self, state_dir: Path, global_key: str, global_ttl_s: int) -> None:
        super().__init__()
        self.path = state_dir / JOURNAL_FILE
        self._lock_path = state_dir / f".{JOURNAL_FILE}.lock"
        self._global_key = global_key
        self._global_ttl_s = global_ttl_s
        self._windows: dict[str, _Window] = {}
        self._inode: int | None = None
        self._offset = 0  # bytes of the journal replayed so far (whole lines only)
        self._records = 0
        self._torn = False  # the file ends in a record a crashed writer never finished
        self._damaged = False  # a replay counted unreadable records: pin them by compacting
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"JournalWindows({str(self.path)!r})"

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """What a failing journal raises."""
        return (OSError, ValueError)

    # limits' moving-window storage API ----------------------------------------------------
    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Count `amount` attempts in `key` unless that would exceed `limit` per `expiry` s."""
        return await self._run(self._acquire, key, limit, expiry, amount)

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(start, attempts) of the window: it reopens at start + expiry."""
        return await self._run(self._window, key, limit, expiry)

    async def clear(self, key: str) -> None:
        """Forget every attempt in `key`."""
        await self._run(self._append, [{"op": "clear", "key": key}])

    async def reset(self) -> int | None:
        """Forget every attempt in every key; return how many keys had some."""
        return await self._run(self._reset)

    async def check(self) -> bool:
        """True when the journal can be read."""
        try:
            await self._run(lambda: None)
        except OSError:
            return False
        return True

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Not supported: totpd only uses the moving-window strategy."""
        raise NotImplementedError("JournalWindows serves the moving-window strategy only")

    async def get(self, key: str) -> int:
        """Not supported: totpd only uses the moving-window strategy."""
        raise NotImplementedError("JournalWindows serves the moving-window strategy only")

    async def get_expiry(self, key: str) -> float:
        """Not supported: totpd only uses the moving-window strategy."""
        raise NotImplementedError("JournalWindows serves the moving-window strategy only")

    # totpd's additions (see totpd.state.WindowStore) -------------------------------------------
    @property
    def storage(self) -> Storage:
        """The `limits` storage: this object itself."""
        return self

    async def keys(self) -> list[str]:
        """Every key with an attempt that still counts."""
        return await self._run(self._keys)

    async def release(self, key: str, since_s: float, until_s: float) -> None:
        """Give back the newest attempt in `key` counted between `since_s` and `until_s`."""
        await self._run(self._release, key, since_s, until_s)

    async def close(self) -> None:
        """Nothing to release: every operation opens and closes the journal."""

    # the journal -------------------------------------------------------------------------
    async def _run(self, operation: Callable[..., T], *args: Any) -> T:
        """Run `operation` in a worker thread (fsync must not stall the event loop)."""
        return await asyncio.to_thread(self._locked_call, operation, *args)

    def _locked_call(self, operation: Callable[..., T], *args: Any) -> T:
        with self._mutex, self._flocked():
            self._replay()
            if self._damaged:
                self._compact()
            return operation(*args)

    @contextmanager
    def _flocked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _replay(self) -> None:
        """Bring memory up to date with the journal: new lines, or all of it if replaced."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._forget_all(None)
            return
        with os.fdopen(fd, "rb") as journal:
            st = os.fstat(journal.fileno())
            if st.st_ino != self._inode or st.st_size < self._offset:
                self._forget_all(st.st_ino)
            journal.seek(self._offset)
            chunk = journal.read(st.st_size - self._offset)
        whole = chunk.rfind(b"\n") + 1
        self._torn = whole < len(chunk)
        damaged = 0
        for line in chunk[:whole].splitlines():
            if line.strip() and not self._apply(line):
                damaged += 1
        self._offset += whole
        if damaged:
            self._damaged = True
            log.error(
                "lockout journal %s: %d unreadable record(s), counted as failed PIN attempts"
                " of the global layer (check the file, then `totpd unlock` if it was not an"
                " attack)",
                self.path,
                damaged,
            )

    def _forget_all(self, inode: int | None) -> None:
        self._windows.clear()
        self._inode, self._offset, self._records = inode, 0, 0
        self._torn = self._damaged = False

    def _apply(self, line: bytes) -> bool:
        """Apply one record; False (after counting a global attempt) when it is unreadable."""
        self._records += 1
        try:
            record = json.loads(line)
            op = record["op"]
            if op == "hit":
                at, ttl_s = float(record["at"]), int(record["ttl"])
                self._hit(str(record["key"]), at, ttl_s)
            elif op == "release":
                self._take_back(str(record["key"]), float(record["from"]), float(record["to"]))
            elif op == "clear":
                self._windows.pop(str(record["key"]), None)
            elif op == "clear_all":
                self._windows.clear()
            else:
                raise ValueError(op)
        except (ValueError, KeyError, TypeError, OverflowError):
            # When it was written is unknown: count it from now (then pinned by compaction).
            self._hit(self._global_key, time.time(), self._global_ttl_s)
            return False
        return True

    def _hit(self, key: str, at_s: float, ttl_s: int) -> None:
        at_s = min(at_s, time.time())  # a clock set back must not stretch a window forward
        window = self._windows.setdefault(key, _Window(ttl_s))
        window.ttl_s = max(window.ttl_s, ttl_s)
        window.times.append(at_s)
        window.times.sort()

    def _take_back(self, key: str, since_s: float, until_s: float) -> bool:
        window = self._windows.get(key)
        if window is None:
            return False
        for index in range(len(window.times) - 1, -1, -1):
            if since_s - RELEASED_SLACK_S <= window.times[index] <= until_s + RELEASED_SLACK_S:
                del window.times[index]
                return True
        return False

    def _append(self, records: list[dict[str, Any]]) -> None:
        """Append records, fsync, and replay them (memory is always the file's replay)."""
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        payload = (b"\n" if self._torn else b"") + text.encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            written = 0
            while written < len(payload):
                written += os.write(fd, payload[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        if self._inode is None:  # a new journal: make its directory entry durable too
            _fsync_dir(self.path.parent)
        self._replay()
        self._compact_if_due()

    def _compact_if_due(self) -> None:
        if self._records >= COMPACT_AFTER_RECORDS and self._records >= 2 * len(
            self._live_records()
        ):
            self._compact()

    def _compact(self) -> None:
        """Rewrite the journal as the live attempts alone (damaged records become real ones)."""
        live = self._live_records()
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in live)
        write_atomic(self.path, text.encode())
        self._damaged = False
        self._replay()

    def _live_records(self) -> list[dict[str, Any]]:
        now_s = time.time()
        return [
            {"op": "hit", "key": key, "at": at_s, "ttl": window.ttl_s}
            for key, window in self._windows.items()
            for at_s in window.times
            if at_s > now_s - window.ttl_s
        ]

    # operations, under the lock, on a fresh replay -----------------------------------------
    def _acquire(self, key: str, limit: int, expiry: int, amount: int) -> bool:
        now_s = time.time()
        window = self._windows.get(key)
        counted = len(window.live(now_s, expiry)) if window else 0
        if counted + amount > limit:
            return False
        self._append([{"op": "hit", "key": key, "at": now_s, "ttl": expiry}] * amount)
        return True

    def _window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now_s = time.time()
        window = self._windows.get(key)
        times = window.live(now_s, expiry) if window else []
        if not times:
            return now_s, 0
        # The window reopens when enough attempts age out to leave room for one more.
        return times[max(0, len(times) - limit)], len(times)

    def _reset(self) -> int:
        now_s = time.time()
        had = sum(1 for w in self._windows.values() if w.live(now_s, w.ttl_s))
        self._append([{"op": "clear_all"}])
        return had

    def _keys(self) -> list[str]:
        now_s = time.time()
        return [k for k, w in self._windows.items() if w.live(now_s, w.ttl_s)]

    def _release(self, key: str, since_s: float, until_s: float) -> None:
        window = self._windows.get(key)
        slack = RELEASED_SLACK_S
        if window and any(since_s - slack <= t <= until_s + slack for t in window.times):
            self._append([{"op": "release", "key": key, "from": since_s, "to": until_s}])


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
