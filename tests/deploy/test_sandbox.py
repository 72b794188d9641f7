"""The daemon's whole stack (aiohttp, argon2-cffi, cryptography, the vault) runs a call under
the unit's kernel-enforced restrictions.

systemd is not PID 1 on every test machine, so the unit itself cannot be started here.
Instead the same seccomp policy systemd would install for totpd.service is built from the
unit file and systemd's own syscall groups (`systemd-analyze syscall-filter`), loaded into the
kernel with libseccomp, and the daemon is exec'd under it: SystemCallFilter= (allow list
minus the ~ groups) with SystemCallErrorNumber=, MemoryDenyWriteExecute= (systemd's seccomp
rules for mmap/mprotect/pkey_mprotect/shmat), RestrictAddressFamilies= and NoNewPrivileges=.
"""

import ctypes.util
import errno
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.helpers import (
    DEPLOY,
    PIN,
    enrol_demo,
    free_port,
    run_totpd,
    unit_values,
    wait_for_port,
    write_config,
)
from totpd import config as config_module
from totpd.pins import ARGON2_NICENESS

LIBSECCOMP = ctypes.util.find_library("seccomp")

SERVICE = DEPLOY / "totpd.service"
pytestmark = pytest.mark.seccomp


@cache
def syscall_group(name: str) -> frozenset[str]:
    """A systemd syscall group (e.g. @system-service), nested groups expanded."""
    done = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager", name],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    members: set[str] = set()
    for line in done.stdout.splitlines()[1:]:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        members |= syscall_group(entry) if entry.startswith("@") else {entry}
    return frozenset(members)


def unit_policy() -> dict[str, object]:
    """The seccomp-enforced part of totpd.service, as systemd 252 would apply it."""
    entries = unit_values(SERVICE, "SystemCallFilter")
    assert not entries[0].startswith("~"), "the unit starts from an allow list"
    allowed = set(syscall_group("@default"))  # systemd adds @default to allow lists
    for entry in entries:  # in order: each adds to or takes from the list
        names: set[str] = set()
        for item in entry.removeprefix("~").split():
            names |= syscall_group(item) if item.startswith("@") else {item}
        if entry.startswith("~"):
            allowed -= names
        else:
            allowed |= names
    errno_name = unit_values(SERVICE, "SystemCallErrorNumber")
    return {
        "allowed": sorted(allowed),
        "errno": getattr(errno, errno_name[0]) if errno_name else None,
        "deny_write_execute": unit_values(SERVICE, "MemoryDenyWriteExecute") == ["yes"],
        "families": [
            getattr(socket, family)
            for family in unit_values(SERVICE, "RestrictAddressFamilies")[0].split()
        ],
        "no_new_privileges": unit_values(SERVICE, "NoNewPrivileges") == ["yes"],
    }


# Runs in the child: load the filters, then exec the command. Filters survive execve().
LAUNCHER = r"""
import ctypes, errno, json, os, sys

policy = json.loads(os.environ.pop("TOTPD_SANDBOX_POLICY"))
lib = ctypes.CDLL(sys.argv[1], use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                       ctypes.c_uint, ctypes.POINTER(ArgCmp)]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ALLOW, EQ, MASKED_EQ = 0x7FFF0000, 4, 7


def ERRNO(code):
    return 0x00050000 | (code & 0xFFFF)


def load(default, rules):
    ctx = lib.seccomp_init(default)
    assert ctx, "seccomp_init failed"
    for action, name, conditions in rules:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            continue  # not a syscall on this architecture
        array = (ArgCmp * max(len(conditions), 1))(*[ArgCmp(*c) for c in conditions])
        rc = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
        assert rc == 0, (name, rc)
    assert lib.seccomp_load(ctx) == 0, "seccomp_load failed"


if policy["no_new_privileges"]:
    PR_SET_NO_NEW_PRIVS = 38
    assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
if policy["deny_write_execute"]:
    PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
    both = PROT_WRITE | PROT_EXEC
    load(ALLOW, [
        (ERRNO(errno.EPERM), "mmap", [(2, MASKED_EQ, both, both)]),
        (ERRNO(errno.EPERM), "mmap2", [(2, MASKED_EQ, both, both)]),
        (ERRNO(errno.EPERM), "mprotect", [(2, MASKED_EQ, PROT_EXEC, PROT_EXEC)]),
        (ERRNO(errno.EPERM), "pkey_mprotect", [(2, MASKED_EQ, PROT_EXEC, PROT_EXEC)]),
        (ERRNO(errno.EPERM), "shmat", [(2, MASKED_EQ, SHM_EXEC, SHM_EXEC)]),
    ])
# RestrictAddressFamilies=: socket() of any other family fails with EAFNOSUPPORT.
load(ALLOW, [(ERRNO(errno.EAFNOSUPPORT), "socket", [(0, EQ, family, 0)])
             for family in range(64) if family not in policy["families"]])
# SystemCallFilter= with SystemCallErrorNumber=: everything not allowed fails with that errno.
# Loaded last, as systemd does: it would refuse the seccomp() calls that load the others.
load(ERRNO(policy["errno"] or errno.EPERM), [(ALLOW, name, []) for name in policy["allowed"]])
os.execv(sys.argv[2], sys.argv[2:])
"""


def sandboxed(*command: str) -> list[str]:
    """`command`, exec'd by the launcher under the unit's seccomp policy."""
    assert LIBSECCOMP is not None
    return [sys.executable, "-c", LAUNCHER, LIBSECCOMP, *command]


def sandbox_env(**extra: str) -> dict[str, str]:
    """The environment that carries the policy to the launcher."""
    return {**os.environ, "TOTPD_SANDBOX_POLICY": json.dumps(unit_policy()), **extra}


def test_the_policy_is_the_units() -> None:
    policy = unit_policy()
    allowed = set(policy["allowed"])  # type: ignore[call-overload]
    assert {"read", "mmap", "execve", "socket", "futex", "epoll_wait"} <= allowed
    assert not allowed & syscall_group("@privileged")
    assert allowed & syscall_group("@resources") == {"setpriority"}
    assert policy["deny_write_execute"] is True


PROBE = r"""
import errno, mmap, os, socket
results = {}
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    results["wx_mapping"] = "allowed"
except OSError as exc:
    results["wx_mapping"] = errno.errorcode[exc.errno]
mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE).close()
for name, family in (("packet", socket.AF_PACKET), ("netlink", socket.AF_NETLINK)):
    try:
        socket.socket(family, socket.SOCK_RAW).close()
        results[name] = "allowed"
    except OSError as exc:
        results[name] = errno.errorcode[exc.errno]
socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()
try:
    os.setpriority(os.PRIO_PROCESS, 0, 1)  # the one call of @resources the unit allows
    results["setpriority"] = "allowed"
except OSError as exc:
    results["setpriority"] = errno.errorcode[exc.errno]
try:
    os.sched_setaffinity(0, os.sched_getaffinity(0))  # the rest of @resources is refused
    results["sched_setaffinity"] = "allowed"
except OSError as exc:
    results["sched_setaffinity"] = errno.errorcode[exc.errno]
try:
    os.chroot("/")  # @privileged
    results["chroot"] = "allowed"
except OSError as exc:
    results["chroot"] = errno.errorcode[exc.errno]
print(results)
"""


def test_the_sandbox_is_enforced_by_the_kernel() -> None:
    # Without this, "the daemon runs under the sandbox" would prove nothing.
    done = subprocess.run(
        sandboxed(sys.executable, "-c", PROBE),
        capture_output=True,
        text=True,
        timeout=60,
        env=sandbox_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(
        {
            "wx_mapping": "EPERM",
            "packet": "EAFNOSUPPORT",
            "netlink": "EAFNOSUPPORT",
            "setpriority": "allowed",
            "sched_setaffinity": "EPERM",
            "chroot": "EPERM",
        }
    )


@pytest.fixture
def sandboxed_daemon(tmp_path: Path) -> Iterator[tuple[Path, int, int, Path]]:
    """`totpd serve` under the unit's seccomp policy: (config, pid, metrics port, log)."""
    port, metrics_port = free_port(), free_port()
    config_path = write_config(
        tmp_path, listen=f"127.0.0.1:{port}", metrics=f"127.0.0.1:{metrics_port}"
    )
    loaded = config_module.load(config_path)
    loaded.paths.state_dir.mkdir(mode=0o700, parents=True)
    enrol_demo(loaded, ("github",))
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            sandboxed(sys.executable, "-m", "totpd", "--config", str(config_path), "serve"),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=sandbox_env(),
        )
    try:
        wait_for_port(port)
        yield config_path, process.pid, metrics_port, log_path
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, log_path.read_text()


def test_a_whole_call_works_inside_the_sandbox(
    sandboxed_daemon: tuple[Path, int, int, Path],
) -> None:
    config_path, pid, metrics_port, log_path = sandboxed_daemon
    # Argon2 (argon2-cffi) checks the PIN, the vault (cryptography AES-GCM) yields the seed,
    # aiohttp serves every webhook: all inside the filter.
    started_s = time.monotonic()
    call = run_totpd(config_path, "call", "--press", PIN, "--press", "", "--press", "")
    assert call.returncode == 0, call.stdout + call.stderr + log_path.read_text()
    assert "code is:" in call.stdout
    assert time.monotonic() - started_s < 30
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        scraped = reply.read().decode()
    assert 'totpd_codes_read_total{account="github"} 1.0' in scraped
    assert "process_resident_memory_bytes" in scraped  # /proc/self reads work too
    assert "Traceback" not in log_path.read_text()
    # The thread that checked the PIN runs at a lower priority than the event loop's.
    niceness = thread_niceness(pid)
    assert niceness.pop(pid) == 0  # the main thread: the event loop
    assert ARGON2_NICENESS in niceness.values(), niceness


def thread_niceness(pid: int) -> dict[int, int]:
    """Each thread's niceness, by thread id (field 19 of /proc/PID/task/TID/stat)."""
    niceness = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        fields = stat.read_text().rpartition(")")[2].split()  # after the thread's name
        niceness[int(stat.parent.name)] = int(fields[16])
    return niceness
