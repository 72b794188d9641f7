"""systemd integration: readiness, status, watchdog and socket activation.

Every function here is a no-op outside systemd, so `totpd serve` runs the same way from a
terminal, a container or a unit. Logging to journald is totpd.logs.
"""

import asyncio
import functools
import logging
import os
import socket
import time

from systemd import daemon

log = logging.getLogger(__name__)


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
