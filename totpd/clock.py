"""Whether the kernel says the clock is synchronized: reported, never obeyed; and how long a
webhook may have waited for this daemon to start.

The clock that decides is Vonage's: a webhook whose signed `iat` disagrees with the local
clock reads no code (totpd.web). The kernel's flag (adjtimex(2)'s STA_UNSYNC, cleared by an
NTP client that disciplines the clock) is only a hint: many VMs and containers report
"unsynchronized" while their clock is right, so it is a metric and a start-up warning.

The hardened unit's ProtectClock= forbids adjtimex(2) outright, even the read-only call
(modes = 0). There, systemd-timesyncd's flag file, which it creates on its first
synchronization after boot, answers instead.
"""

import ctypes
import ctypes.util
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

STA_UNSYNC = 0x0040  # <linux/timex.h>
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
# Webhooks read this long after the daemon began serving may still come from the socket's
# queue of its start-up.
QUEUE_DRAIN_S = 10.0


class _Timex(ctypes.Structure):
    """The head of `struct timex` (<sys/timex.h>), through `status`; the rest is room."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("rest", ctypes.c_byte * 256),  # larger than the rest of the struct on any ABI
    ]


@dataclass(frozen=True)
class ClockSync:
    """Whether the clock is synchronized, and who said so."""

    synchronized: bool
    source: str


def kernel_sync() -> ClockSync:
    """The kernel's word on the clock (adjtimex, read-only), or systemd-timesyncd's where a
    syscall filter refuses adjtimex."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    timex = _Timex()  # modes = 0: read, change nothing
    if libc.adjtimex(ctypes.byref(timex)) != -1:
        return ClockSync(not timex.status & STA_UNSYNC, "the kernel (adjtimex)")
    refused = ctypes.get_errno()
    if refused not in (errno.EPERM, errno.ENOSYS):
        raise OSError(refused, "adjtimex")
    return ClockSync(
        TIMESYNCD_FLAG.exists(),
        f"systemd-timesyncd ({TIMESYNCD_FLAG}; adjtimex is refused here)",
    )


@dataclass
class StartupWait:
    """How much older than its signed iat a webhook may look because it waited in the socket's
    queue while this daemon started: socket activation (the first webhook starts it), or a
    restart with totpd.socket holding the port; a daemon that binds its own port has no such
    queue and forgives nothing. That is at most the time since the process began, and it is
    forgiven on the ahead side of the clock check (a clock behind is never excused), only
    until QUEUE_DRAIN_S after serving began. Nothing is forgiven outside the
    daemon (`began_s` None). Times are time.monotonic()'s: setting the wall clock moves none.
    """

    began_s: float | None = None  # when the process was started (systemd forks it)
    serving_s: float | None = None  # when every listener accepted connections

    @classmethod
    def of_this_process(cls) -> "StartupWait":
        """Started when this process was (/proc/self/stat), not yet serving."""
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
        age_s = time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks / os.sysconf("SC_CLK_TCK")
        return cls(began_s=time.monotonic() - max(age_s, 0.0))

    def serving(self) -> None:
        """Every listener accepts connections now: the queue drains from here."""
        self.serving_s = time.monotonic()

    def allowance_s(self) -> float:
        """The seconds a webhook read now may have waited for the daemon to start."""
        if self.began_s is None:
            return 0.0
        now_s = time.monotonic()
        if self.serving_s is None:
            return now_s - self.began_s
        if now_s - self.serving_s > QUEUE_DRAIN_S:
            return 0.0
        return self.serving_s - self.began_s
