"""totpd.systemd against the real thing: sd_notify datagrams on real AF_UNIX sockets, the
watchdog on a real event loop, and socket activation by systemd's own `systemd-socket-activate`.
"""

import asyncio
import itertools
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port
from totpd import systemd

WATCHDOG_USEC = 100_000  # 0.1 s timeout: pings every 0.05 s


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """An abstract AF_UNIX datagram socket, named in $NOTIFY_SOCKET as "@name" (as systemd does)."""
    name = f"totpd-test-{os.getpid()}-{secrets.token_hex(4)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield sock
    sock.close()


def pending(sock: socket.socket) -> list[str]:
    """Every datagram waiting on `sock`, decoded."""
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)
    return messages


def test_ready_reaches_an_abstract_notify_socket(notify_socket: socket.socket) -> None:
    assert systemd.notify_ready("serving on 127.0.0.1:8080")
    assert notify_socket.recv(4096).decode() == "READY=1\nSTATUS=serving on 127.0.0.1:8080"


def test_status_reaches_a_notify_socket_on_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert systemd.notify_status("3 calls served, 0 lockouts")
        assert sock.recv(4096).decode() == "STATUS=3 calls served, 0 lockouts"


def test_a_status_text_cannot_inject_other_assignments(notify_socket: socket.socket) -> None:
    systemd.notify_status("fine\nREADY=1\nMAINPID=1")
    assert notify_socket.recv(4096).decode() == "STATUS=fine READY=1 MAINPID=1"


def test_stopping_and_reloading_are_announced(notify_socket: socket.socket) -> None:
    systemd.notify_stopping("draining 2 calls")
    assert notify_socket.recv(4096).decode() == "STOPPING=1\nSTATUS=draining 2 calls"
    before_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    systemd.notify_reloading()
    reloading, monotonic = notify_socket.recv(4096).decode().split("\n")
    assert reloading == "RELOADING=1"
    assert monotonic.startswith("MONOTONIC_USEC=")
    assert 0 <= int(monotonic.removeprefix("MONOTONIC_USEC=")) - before_us < 2_000_000


def test_outside_systemd_every_notification_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not systemd.notify_ready("x")
    assert not systemd.notify_status("x")
    assert not systemd.notify_stopping()


async def test_watchdog_pings_at_half_the_timeout(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    task = asyncio.create_task(systemd.watchdog())
    await asyncio.sleep(0.5)
    task.cancel()
    pings = pending(notify_socket)
    assert set(pings) == {"WATCHDOG=1"}
    assert 8 <= len(pings) <= 12, pings  # every 0.05 s for 0.5 s


@pytest.mark.parametrize(
    ("usec", "pid"), [("0", None), (None, None), (str(WATCHDOG_USEC), "1"), ("junk", None)]
)
async def test_watchdog_stays_quiet_when_systemd_did_not_ask_this_process(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    await asyncio.wait_for(systemd.watchdog(), timeout=1)  # returns at once
    assert pending(notify_socket) == []


async def test_a_blocked_event_loop_stops_the_pings(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    arrivals: list[float] = []
    done = threading.Event()

    def listen() -> None:
        notify_socket.settimeout(0.05)
        while not done.is_set():
            try:
                notify_socket.recv(4096)
            except TimeoutError:
                continue
            arrivals.append(time.monotonic())

    listener = threading.Thread(target=listen)
    listener.start()
    task = asyncio.create_task(systemd.watchdog())
    await asyncio.sleep(0.3)
    time.sleep(0.6)
    await asyncio.sleep(0.3)
    task.cancel()
    done.set()
    listener.join()
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert max(gaps) >= 0.55, "pings went on while the loop was blocked"
    assert sorted(gaps)[len(gaps) // 2] < 0.1, "pings were not regular before and after"


def test_socket_activation_hands_over_named_sockets() -> None:
    port = free_port()
    script = textwrap.dedent(
        """
        import json, os
        from totpd.systemd import listen_sockets
        found = listen_sockets()
        print(json.dumps({
            "sockets": {name: [list(s.getsockname()) for s in socks]
                        for name, socks in found.items()},
            "listening": [s.getsockopt(__import__("socket").SOL_SOCKET,
                          __import__("socket").SO_ACCEPTCONN) for socks in found.values()
                          for s in socks],
            "env_left": [k for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
                         if k in os.environ],
        }), flush=True)
        """
    )
    activate = shutil.which("systemd-socket-activate")
    assert activate, "systemd-socket-activate (package systemd) is needed"
    process = subprocess.Popen(
        [activate, "-l", f"127.0.0.1:{port}", "--fdname=webhooks", sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # it spawns the child on the first connection
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    report = json.loads(out.strip().splitlines()[-1])
    assert report["sockets"] == {"webhooks": [["127.0.0.1", port]]}, err
    assert report["listening"] == [1]
    assert report["env_left"] == []  # a child process will not take them for its own


def test_outside_socket_activation_there_are_no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    assert systemd.listen_sockets() == {}


def test_an_unreachable_manager_never_breaks_the_daemon(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # E.g. an abstract $NOTIFY_SOCKET seen from another network namespace: nobody listens.
    monkeypatch.setenv("NOTIFY_SOCKET", f"@totpd-nobody-{secrets.token_hex(8)}")
    systemd._warn_unreachable.cache_clear()  # warned once per process; start fresh
    with caplog.at_level(logging.WARNING, logger="totpd.systemd"):
        assert not systemd.notify_ready("x")
        assert not systemd.notify("WATCHDOG=1")
    warnings = [r.getMessage() for r in caplog.records if r.name == "totpd.systemd"]
    assert warnings == ["cannot notify the service manager: Connection refused"]
