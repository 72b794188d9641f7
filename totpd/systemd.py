"""systemd integration: readiness, status, watchdog, journald fields and socket activation.

Every function here is a no-op outside systemd, so `totpd serve` runs the same way from a
terminal, a container or a unit. Log records may carry structured fields as
`extra={"fields": {"CALL_UUID": ..., "STEP": ..., "OUTCOME": ...}}`: they become journal
fields under journald and `key=value` pairs on stderr.
"""

import asyncio
import functools
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Mapping

from systemd import daemon, journal

SYSLOG_IDENTIFIER = "totpd"
log = logging.getLogger(__name__)

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


def notify(*assignments: str) -> bool:
    """Send `VAR=value` lines to the service manager; False when not run by systemd.

    `$NOTIFY_SOCKET` may be a path or an abstract socket ("@name"); libsystemd handles both.
    """
    if not os.environ.get("NOTIFY_SOCKET") or not assignments:
        return False
    try:
        return bool(daemon.notify("\n".join(assignments)))
    except OSError as exc:
        # The manager went away or is unreachable (an abstract socket from another network
        # namespace): serving matters more than telling it. The watchdog will notice.
        _warn_unreachable(exc.strerror or str(exc))
        return False


@functools.cache
def _warn_unreachable(reason: str) -> None:
    log.warning("cannot notify the service manager: %s", reason)  # once per reason


def _status_line(text: str) -> str:
    # One line: a newline would start a new (possibly forged) assignment.
    return "STATUS=" + " ".join(text.split())


def notify_ready(status: str = "") -> bool:
    """Tell systemd the service is up (READY=1), with an optional STATUS line."""
    lines = ["READY=1"]
    if status:
        lines.append(_status_line(status))
    return notify(*lines)


def notify_status(text: str) -> bool:
    """Set the free-form status line shown by `systemctl status`."""
    return notify(_status_line(text))


def notify_reloading() -> bool:
    """Tell systemd a reload has started; send `notify_ready()` again when it is done."""
    monotonic_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_us}")


def notify_stopping(status: str = "") -> bool:
    """Tell systemd the service is shutting down (STOPPING=1)."""
    lines = ["STOPPING=1"]
    if status:
        lines.append(_status_line(status))
    return notify(*lines)


def watchdog_timeout_s() -> float | None:
    """The watchdog timeout systemd expects pings within, or None when it is off.

    Follows sd_watchdog_enabled(3): $WATCHDOG_USEC, and $WATCHDOG_PID when set must be us.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000


async def watchdog(interval_s: float | None = None) -> None:
    """Ping WATCHDOG=1 forever from the event loop, every half timeout; returns if it is off.

    The pings run as a task on the loop that serves webhooks, so a loop that is stuck (a
    blocking call, a deadlock) stops pinging and systemd restarts the service.
    """
    if interval_s is None:
        timeout_s = watchdog_timeout_s()
        if timeout_s is None:
            return
        interval_s = timeout_s / 2
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval_s)


def listen_sockets() -> dict[str, list[socket.socket]]:
    """Sockets passed by socket activation, by FileDescriptorName= (empty outside systemd).

    A socket unit without FileDescriptorName= names its sockets after the unit
    ("totpd.socket"); the caller decides what an unknown name serves. The environment
    variables are cleared so a child process does not take them for its own.
    """
    named = daemon.listen_fds_with_names(True)
    # libsystemd unsets them in the C environment; os.environ is Python's own copy, and it
    # is what subprocess hands to children.
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    sockets: dict[str, list[socket.socket]] = {}
    for fd, name in sorted(named.items()):
        sockets.setdefault(str(name), []).append(socket.socket(fileno=fd))
    return sockets
