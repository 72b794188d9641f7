"""Logging: journald's native protocol under systemd, `key=value` text on a terminal.

Log records may carry structured fields as
`extra={"fields": {"CALL_UUID": ..., "STEP": ..., "OUTCOME": ...}}`: they become journal fields
under journald and `key=value` pairs on stderr. `configure_logging` picks the handler.
"""

import logging
import os
import re
import sys
import time
from collections.abc import Mapping

from systemd import journal

SYSLOG_IDENTIFIER = "totpd"

# A journal field name: upper case letters, digits and "_", not starting with "_" (those are
# trusted fields set by journald itself), at most 64 characters.
_FIELD_NAME = re.compile(r"[A-Z0-9][A-Z0-9_]{0,63}")
_PRIORITY_BY_LEVEL = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4))
_RESERVED = frozenset(
    {"MESSAGE", "MESSAGE_ID", "PRIORITY", "LOGGER", "THREAD_NAME", "CODE_FILE", "CODE_LINE"}
    | {"CODE_FUNC", "SYSLOG_IDENTIFIER"}
)


def record_fields(record: logging.LogRecord) -> dict[str, str]:
    """The structured fields a record carries in `extra={"fields": {...}}`, as strings.

    Names are upper-cased; a name that is not a valid journal field name, or that would
    override a standard one (MESSAGE, PRIORITY, ...), is dropped rather than allowed to forge
    a trusted field such as `_PID`.
    """
    raw = getattr(record, "fields", None)
    if not isinstance(raw, Mapping):
        return {}
    fields = {}
    for name, value in raw.items():
        key = str(name).upper()
        if value is None or not _FIELD_NAME.fullmatch(key) or key in _RESERVED:
            continue
        fields[key] = str(value)
    return fields


def journal_priority(levelno: int) -> int:
    """The syslog priority journald uses for a logging level (debug is 7, info 6)."""
    for threshold, priority in _PRIORITY_BY_LEVEL:
        if levelno >= threshold:
            return priority
    return 6 if levelno >= logging.INFO else 7


class StructuredJournalHandler(journal.JournalHandler):  # type: ignore[misc]
    """journald's native protocol, with each record's structured fields as journal fields.

    Unlike the stock handler it does not copy every attribute of the record into the journal:
    only the message, the standard code/logger fields and the record's declared fields.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level=level, SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record to journald."""
        try:
            message = self.format(record)
            standard: dict[str, str | int] = {
                "PRIORITY": str(journal_priority(record.levelno)),
                "LOGGER": record.name,
                "THREAD_NAME": record.threadName or "",
                "CODE_FILE": record.pathname,
                "CODE_LINE": record.lineno,
                "CODE_FUNC": record.funcName,
                "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
            }
            self.send(message, **record_fields(record), **standard)
        except Exception:  # a logging handler must never raise into the caller
            self.handleError(record)


class KeyValueFormatter(logging.Formatter):
    """`time level logger: message key=value ...` for a terminal or a plain log file."""

    def __init__(self) -> None:
        super().__init__(fmt="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """ISO 8601 local time to the millisecond."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        """The line, then each structured field as key=value (quoted when it has spaces)."""
        line = super().format(record)
        pairs = [f"{name.lower()}={_quote(value)}" for name, value in record_fields(record).items()]
        return " ".join([line, *pairs]) if pairs else line


def _quote(value: str) -> str:
    if value and not any(ch.isspace() or ch in '"=\\' for ch in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def journal_connected() -> bool:
    """True when stderr is journald's stream for this service ($JOURNAL_STREAM matches it).

    systemd sets $JOURNAL_STREAM to "device:inode" of the stream it connected; a child whose
    stderr was redirected elsewhere inherits the variable, so compare rather than trust it.
    """
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, sep, inode = stream.partition(":")
    if not sep or not device.isdigit() or not inode.isdigit():
        return False
    try:
        stat = os.fstat(2)  # the process's real stderr, whatever sys.stderr was replaced by
    except OSError:
        return False
    return stat.st_dev == int(device) and stat.st_ino == int(inode)


def configure_logging(level: int | str = logging.INFO, *, journal: bool | None = None) -> None:
    """Send the root logger to journald (when stderr is the journal) or to stderr as text.

    `journal` forces the choice; by default it follows `journal_connected()`.
    """
    use_journal = journal_connected() if journal is None else journal
    handler: logging.Handler
    if use_journal:
        handler = StructuredJournalHandler()
        # journald adds time, unit and priority itself.
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)


class Throttle:
    """At most one log line per key per interval: `admit` says whether this one may go, and
    how many were held back since the last that went."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._next_s: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, key: str) -> int | None:
        """None when a line for `key` went within the interval; else how many were held."""
        now_s = time.monotonic()
        if now_s < self._next_s.get(key, 0.0):
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._next_s[key] = now_s + self.interval_s
        return self._held.pop(key, 0)
