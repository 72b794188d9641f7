"""The embedded storage's replay cache: JWT ids seen, kept in memory and in a file in the state
directory, so that a restart (a crash, the watchdog, `Restart=`) forgets none of them.

Without it, a webhook captured on the way in could be sent again after a restart, within its
freshness window, and be taken for new: an answer and a PIN step replayed that way would read
a fresh code, and move an HOTP counter. Refusing every token issued before the process started
is no substitute: under socket activation the first webhook starts the daemon, so its token
always predates the process.

`replays.journal`: one line per first use, `[expires_s, "jti"]` (wall clock, JSON so a `jti`
cannot break a line), appended with a single write(2) before the webhook goes any further.
There is no fsync: once write(2) returns, the line is in the kernel's page cache and survives
the process being killed (kill -9, the watchdog's SIGABRT, an OOM kill). A power cut can lose
the lines the kernel had not yet written back (ext4 commits every 5 s by default); the machine
then takes longer than that to boot again, and a token older than
`vonage.max_clock_disagreement_s` (5 s by default) only ever hears the clock goodbye.

When the file has been written to for longer than the longest window asked for, it is renamed
`replays.journal.old` (replacing the previous one, whose lines have all expired by then) and
a new one is started: the two files hold at most two windows' worth of lines, and nothing is
ever rewritten. Lines that cannot be read (a torn last line, damage) are skipped and counted.
"""

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from totpd import files, speedups
from totpd.errors import StateUnavailable

REPLAYS_FILE = "replays.journal"
SWEEP_EVERY_S = 30.0

log = logging.getLogger("totpd.state")


class ReplayFile:
    """ReplayCache in this process, persisted in `<state_dir>/replays.journal` (see
    totpd.state.ReplayCache). `clock` is the wall clock (time.time)."""

    def __init__(self, state_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = state_dir / REPLAYS_FILE
        self._old_path = state_dir / f"{REPLAYS_FILE}.old"
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._next_sweep_s = 0.0
        self._span_s = 0.0  # the longest window asked for so far
        self._fd = -1  # the journal, opened by load(): a command that never checks a token
        self._torn = False  # (status, unlock) neither reads nor creates it
        self._opened_s = 0.0

    def load(self) -> None:
        """Read what the files remember and open the journal (once; first_use calls it)."""
        if self._fd >= 0:
            return
        now_s = self._clock()
        damaged = self._read(self._old_path, now_s) + self._read(self.path, now_s)
        if damaged:
            log.warning(
                "%s: %d unreadable line(s) skipped (a power cut can tear the last one)",
                self.path,
                damaged,
            )
        self._open(now_s)

    def _read(self, path: Path, now_s: float) -> int:
        """Load the unexpired lines of `path`; return how many could not be read."""
        try:
            raw = files.read_file(path)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StateUnavailable(f"{path}: cannot read: {exc.strerror}") from None
        damaged = 0
        for line in raw.split(b"\n"):
            if not line:
                continue
            try:
                expires_s, jti = speedups.loads(line)
                if not isinstance(jti, str) or not isinstance(expires_s, int | float):
                    raise ValueError(line)
            except (ValueError, TypeError):  # not JSON, or not a pair
                damaged += 1
                continue
            if expires_s > now_s:
                self._seen[jti] = max(expires_s, self._seen.get(jti, 0.0))
                self._span_s = max(self._span_s, expires_s - now_s)
        return damaged

    def _open(self, now_s: float) -> None:
        """Open the journal for appending (the one there is, or a new one)."""
        try:
            fd = files.open_append(self.path)
            size = os.fstat(fd).st_size
            # A line torn by a power cut: the next one starts on a line of its own.
            self._torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        except OSError as exc:
            raise StateUnavailable(f"{self.path}: cannot open: {exc.strerror}") from None
        self._fd = fd
        self._opened_s = now_s

    def _rotate(self, now_s: float) -> None:
        """Start a new journal; the current one becomes the old one, the old one goes."""
        os.close(self._fd)
        self._fd = -1
        try:
            self.path.replace(self._old_path)
        except OSError as exc:
            raise StateUnavailable(f"{self.path}: cannot rotate: {exc.strerror}") from None
        self._open(now_s)

    async def first_use(self, jti: str, ttl_s: int) -> bool:
        """See ReplayCache. The jti is on its way to disk before this returns True."""
        if self._fd < 0:
            self.load()
        now_s = self._clock()
        if now_s >= self._next_sweep_s:
            self._seen = {j: t for j, t in self._seen.items() if t > now_s}
            self._next_sweep_s = now_s + SWEEP_EVERY_S
        expires_s = self._seen.get(jti)
        if expires_s is not None and expires_s > now_s:
            return False
        self._span_s = max(self._span_s, float(ttl_s))
        if now_s >= self._opened_s + self._span_s:
            self._rotate(now_s)
        expires_s = now_s + ttl_s
        line = speedups.dumps([expires_s, jti]) + b"\n"
        if self._torn:
            line = b"\n" + line
        try:
            written = os.write(self._fd, line)
        except OSError as exc:  # a full disk: refuse rather than forget (503, Vonage retries)
            raise StateUnavailable(f"{self.path}: cannot record a JWT id: {exc.strerror}") from None
        self._torn = written < len(line)
        if self._torn:  # a regular file writes short only when the disk is full
            raise StateUnavailable(f"{self.path}: cannot record a JWT id: disk full")
        self._seen[jti] = expires_s
        return True

    def close(self) -> None:
        """Close the journal."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
