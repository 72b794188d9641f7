"""Whether the kernel says the clock is synchronized: reported, never obeyed.

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
from dataclasses import dataclass
from pathlib import Path

STA_UNSYNC = 0x0040  # <linux/timex.h>
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


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
