"""`totpd serve` as systemd runs it: a real process, a real $NOTIFY_SOCKET the test listens
on, a watchdog, signals, socket activation, /metrics after an emulated call, and bad input
that must end the process fast with one clear line."""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

import totpd
from tests.helpers import (
    APPLICATION_ID,
    PIN,
    SIGNATURE_SECRET,
    enrol_demo,
    free_port,
    parse_journal_datagram,
    run_totpd,
    write_config,
)
from tests.servers import Opener, RedisServer
from totpd import config as config_module
from totpd import daemon as daemon_module
from totpd import vonage
from totpd.daemon import LISTEN_BACKLOG

WATCHDOG_USEC = 200_000  # pings every 0.1 s


class Notifications:
    """Every sd_notify datagram sent to an abstract socket, with its arrival time."""

    def __init__(self, path: Path | None = None) -> None:
        # Abstract by default; a path like systemd's /run/systemd/notify also reaches a
        # service in another network namespace (abstract names are per namespace).
        self.name = f"totpd-serve-{os.getpid()}-{secrets.token_hex(4)}"
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path) if path else "\0" + self.name)
        self.sock.settimeout(0.05)
        self.received: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Condition()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        self.on_ready: Callable[[], object] = lambda: None
        self.at_ready: object = None

    def _listen(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            message = dict(line.split("=", 1) for line in data.split("\n") if "=" in line)
            if message.get("READY") == "1" and self.at_ready is None:
                self.at_ready = self.on_ready()  # checked the instant READY arrives
            with self._lock:
                self.received.append((time.monotonic(), message))
                self._lock.notify_all()

    @property
    def address(self) -> str:
        """The $NOTIFY_SOCKET value."""
        return str(self.path) if self.path else "@" + self.name

    def wait_for(self, key: str, value: str | None = None, timeout_s: float = 20) -> dict[str, str]:
        """The first message carrying `key` (= `value` when given), waiting if need be."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for _, message in self.received:
                    if key in message and (value is None or message[key] == value):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {key}= in {self.messages()}")
                self._lock.wait(remaining)

    def messages(self) -> list[dict[str, str]]:
        """Everything received so far."""
        with self._lock:
            return [message for _, message in self.received]

    def clear(self) -> None:
        """Forget what was received so far."""
        with self._lock:
            self.received.clear()

    def close(self) -> None:
        """Stop listening."""
        self._done.set()
        self._thread.join()
        self.sock.close()


class Daemon:
    """One `python -m totpd serve` process with its config, ports and notifications."""

    def __init__(self, home: Path, notifications: Notifications, extra: str = "") -> None:
        self.home = home
        self.port, self.metrics_port = free_port(), free_port()
        self.config_path = write_config(
            home, extra, listen=f"127.0.0.1:{self.port}", metrics=f"127.0.0.1:{self.metrics_port}"
        )
        self.notifications = notifications
        self.log_path = home / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    def enrol(self) -> None:
        """Enrol alice with GitHub and Gmail."""
        loaded = config_module.load(self.config_path)
        loaded.paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        enrol_demo(loaded, ("github", "gmail"))

    def environment(self, **extra: str) -> dict[str, str]:
        """The environment systemd would give the service."""
        return {
            **os.environ,
            "NOTIFY_SOCKET": self.notifications.address,
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
            **extra,
        }

    def start(self, *prefix: str, env: dict[str, str] | None = None) -> None:
        """Start the daemon (behind `prefix`, e.g. systemd-socket-activate)."""
        command = [*prefix, sys.executable, "-m", "totpd", "--config", str(self.config_path)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env or self.environment(),
            )

    def log(self) -> str:
        """What the daemon wrote to stdout and stderr."""
        return self.log_path.read_text()

    def signal(self, signum: int) -> None:
        """Send a signal to the daemon."""
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=30)

    def scrape(self) -> dict[str, float]:
        """GET /metrics, as Prometheus does: {series with labels: value}."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text: str = response.read().decode()
        series = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                series[name] = float(value)
        return series


@pytest.fixture
def notifications() -> Iterator[Notifications]:
    """A notify socket for one test."""
    listening = Notifications()
    yield listening
    listening.close()


@pytest.fixture
def daemon(tmp_path: Path, notifications: Notifications) -> Iterator[Daemon]:
    """An enrolled daemon, not yet started; stopped after the test."""
    made = Daemon(tmp_path, notifications)
    made.enrol()
    yield made
    if made.process is not None and made.process.poll() is None:
        made.process.kill()
        made.process.wait()


def port_accepts(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port right now."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_ready_is_sent_once_every_listener_accepts(daemon: Daemon) -> None:
    daemon.notifications.on_ready = lambda: (
        port_accepts(daemon.port),
        port_accepts(daemon.metrics_port),
    )
    daemon.start()
    ready = daemon.notifications.wait_for("READY", "1")
    assert daemon.notifications.at_ready == (True, True)
    assert ready["STATUS"] == "0 calls in progress, 0 served, 0 lockouts"
    assert daemon.stop() == 0


def listen_backlog(port: int) -> int:
    """The accept queue's length of the socket listening on 127.0.0.1:port (ss's Send-Q)."""
    shown = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(shown[2])


def kernel_backlog_cap() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def test_the_listeners_queue_a_flood_of_connections_not_128(daemon: Daemon) -> None:
    # With aiohttp's default of 128 the kernel dropped genuine handshakes under `make bench`'s
    # slow-connection siege, and each came back a second later, past Vonage's connect timeout.
    daemon.start()
    daemon.notifications.wait_for("READY", "1")
    expected = min(LISTEN_BACKLOG, kernel_backlog_cap())
    assert expected > 128
    assert listen_backlog(daemon.port) == expected
    assert listen_backlog(daemon.metrics_port) == expected
    assert daemon.stop() == 0


def test_serve_warns_at_start_when_no_application_id_is_set(daemon: Daemon) -> None:
    text = daemon.config_path.read_text()
    daemon.config_path.write_text(text.replace("application_id = ", "# application_id = "))
    daemon.start()
    daemon.notifications.wait_for("READY", "1")
    assert daemon.stop() == 0
    warnings = [line for line in daemon.log().splitlines() if "application_id" in line]
    assert len(warnings) == 1, daemon.log()
    assert warnings[0].endswith(
        "WARNING totpd: vonage.application_id is empty: webhooks signed for any application"
        " on this Vonage account are accepted (the signature secret is the account's)"
    )


def test_serve_with_an_application_id_does_not_warn(daemon: Daemon) -> None:
    daemon.start()
    daemon.notifications.wait_for("READY", "1")
    assert daemon.stop() == 0
    assert "application_id" not in daemon.log()


def test_watchdog_pings_come_from_the_running_daemon(daemon: Daemon) -> None:
    daemon.start()
    daemon.notifications.wait_for("READY", "1")
    daemon.notifications.clear()
    time.sleep(1.0)
    pings = [m for m in daemon.notifications.messages() if m.get("WATCHDOG") == "1"]
    assert 6 <= len(pings) <= 14, pings  # every 0.1 s
    assert daemon.stop() == 0


def test_without_a_watchdog_there_are_no_pings(daemon: Daemon) -> None:
    daemon.start(env=daemon.environment(WATCHDOG_USEC="0"))
    daemon.notifications.wait_for("READY", "1")
    time.sleep(0.5)
    assert not [m for m in daemon.notifications.messages() if "WATCHDOG" in m]
    assert daemon.stop() == 0


def test_sigterm_announces_stopping_and_exits_cleanly(daemon: Daemon) -> None:
    daemon.start()
    daemon.notifications.wait_for("READY", "1")
    started_s = time.monotonic()
    daemon.signal(signal.SIGTERM)
    stopping = daemon.notifications.wait_for("STOPPING", "1")
    assert stopping["STATUS"].startswith("draining in-flight webhooks")
    assert daemon.stop() == 0
    assert time.monotonic() - started_s < 5, "an idle daemon stops at once"
    assert "Traceback" not in daemon.log()
    assert not port_accepts(daemon.port)


def test_a_call_moves_the_metrics_and_sighup_reports_it(daemon: Daemon) -> None:
    daemon.start()
    daemon.notifications.wait_for("READY", "1")
    before = daemon.scrape()
    call = run_totpd(
        daemon.config_path, "call", "--press", PIN, "--press", "1", "--press", "", "--press", ""
    )
    assert call.returncode == 0, call.stdout + call.stderr
    after = daemon.scrape()

    def moved(series: str) -> float:
        return after.get(series, 0.0) - before.get(series, 0.0)

    assert moved('totpd_calls_total{outcome="done"}') == 1
    assert moved('totpd_codes_read_total{account="github"}') >= 1
    assert moved('totpd_webhook_seconds_count{route="answer"}') == 1
    assert moved('totpd_webhook_seconds_bucket{le="+Inf",route="input"}') >= 2
    assert after[f'totpd_build_info{{version="{totpd.__version__}"}}'] == 1

    # SIGHUP: reload users and accounts, and a fresh STATUS line with the call counted.
    daemon.notifications.clear()
    daemon.signal(signal.SIGHUP)
    daemon.notifications.wait_for("RELOADING", "1")
    ready = daemon.notifications.wait_for("READY", "1")
    assert ready["STATUS"] == "0 calls in progress, 1 served, 0 lockouts"
    assert daemon.stop() == 0
    assert re.search(r"reloaded 1 users and 2 accounts", daemon.log())


def test_lockouts_show_in_status_and_gauge(daemon: Daemon) -> None:
    daemon.start()
    daemon.notifications.wait_for("READY", "1")
    for _ in range(2):  # 3 wrong PINs per call: the caller layer (3 per 15 minutes) trips
        run_totpd(
            daemon.config_path, "call", "--press", "000000", "--press", "000000", "--press", "0"
        )
    daemon.notifications.clear()
    daemon.signal(signal.SIGHUP)
    ready = daemon.notifications.wait_for("READY", "1")
    status = re.fullmatch(r"0 calls in progress, \d+ served, (\d+) lockouts", ready["STATUS"])
    assert status, ready
    assert int(status[1]) >= 1
    scraped = daemon.scrape()
    assert scraped['totpd_lockouts_active{class="any",layer="caller"}'] == 1
    assert scraped['totpd_lockouts_active{class="unlisted",layer="global"}'] == 0
    assert scraped.get('totpd_pin_failures_total{class="unlisted",layer="pin"}', 0) >= 3
    assert daemon.stop() == 0


def test_socket_activation_serves_the_passed_socket(daemon: Daemon) -> None:
    activate = shutil.which("systemd-socket-activate")
    assert activate, "systemd-socket-activate (package systemd) is needed"
    passed_port = free_port()
    # Like systemd, it hands the service a clean environment: only what -E names.
    forwarded = [
        f"--setenv={name}"
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", config_module.SIGNATURE_SECRET_ENV, "PATH")
    ]
    daemon.start(activate, "-l", f"127.0.0.1:{passed_port}", "--fdname=webhooks", *forwarded)
    # systemd-socket-activate starts the service on the first connection, as systemd does.
    deadline = time.monotonic() + 10
    while not port_accepts(passed_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon.notifications.wait_for("READY", "1")
    request = urllib.request.Request(
        f"http://127.0.0.1:{passed_port}/webhooks/answer", data=b"{}", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310 - fixed URL
    refused.value.close()
    assert refused.value.code == 401  # totpd answered: unsigned
    assert not port_accepts(daemon.port), "the configured port is not bound when a socket is passed"
    assert listen_backlog(passed_port) == min(LISTEN_BACKLOG, kernel_backlog_cap())
    assert f"webhooks listening on 127.0.0.1:{passed_port} (socket activation)" in daemon.log()
    assert daemon.stop() == 0


@pytest.mark.root  # for a network namespace
def test_with_private_network_both_listeners_come_from_systemd(tmp_path: Path) -> None:
    # The private-network drop-in: the service has no network of its own (here: a fresh
    # network namespace with lo down), only the two sockets the socket units pass.
    notifications = Notifications(tmp_path / "notify")
    daemon = Daemon(tmp_path, notifications)
    daemon.enrol()
    activate, unshare = shutil.which("systemd-socket-activate"), shutil.which("unshare")
    assert activate
    assert unshare
    webhooks_port, metrics_port = free_port(), free_port()
    forwarded = [
        f"--setenv={name}"
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", config_module.SIGNATURE_SECRET_ENV, "PATH")
    ]
    daemon.start(
        activate,
        "-l",
        f"127.0.0.1:{webhooks_port}",
        "-l",
        f"127.0.0.1:{metrics_port}",
        "--fdname=webhooks:metrics",
        *forwarded,
        unshare,  # keeps its PID when it execs, so $LISTEN_PID still matches
        "--net",
        "--",
    )
    deadline = time.monotonic() + 10
    while not port_accepts(webhooks_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon.notifications.wait_for("READY", "1")
    daemon.metrics_port = metrics_port
    assert daemon.scrape()[f'totpd_build_info{{version="{totpd.__version__}"}}'] == 1
    status, _ = http_post(webhooks_port, "/webhooks/answer")
    assert status == 401
    log = daemon.log()
    assert f"metrics listening on 127.0.0.1:{metrics_port} (socket activation)" in log
    assert daemon.stop() == 0
    notifications.close()


def http_post(port: int, path: str) -> tuple[int, bytes]:
    """An unsigned POST with an empty JSON body."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - fixed URL
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def one_line_failure(daemon: Daemon, env: dict[str, str]) -> str:
    """Start the daemon, expect a fast non-zero exit; return its one error line."""
    started_s = time.monotonic()
    daemon.start(env=env)
    assert daemon.process is not None
    status = daemon.process.wait(timeout=15)
    assert status != 0
    assert time.monotonic() - started_s < 10
    output = daemon.log()
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, output
    assert output.strip().splitlines()[-1] == errors[0], "the error is the last word"
    assert not [m for m in daemon.notifications.messages() if m.get("READY") == "1"]
    return errors[0]


def test_a_port_in_use_fails_fast_with_one_line(daemon: Daemon) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", daemon.port))
        squatter.listen()
        line = one_line_failure(daemon, daemon.environment())
    assert line == (
        f"totpd: error: cannot listen for webhooks on 127.0.0.1:{daemon.port}:"
        " Address already in use"
    )


def test_a_bad_config_fails_fast_with_one_line(daemon: Daemon) -> None:
    daemon.config_path.write_text(daemon.config_path.read_text() + "\n[server]\nlisten = 1\n")
    line = one_line_failure(daemon, daemon.environment())
    assert line.startswith(f"totpd: error: {daemon.config_path}: not valid TOML")


def test_a_config_with_an_unknown_key_fails_fast_with_one_line(daemon: Daemon) -> None:
    text = daemon.config_path.read_text().replace("[metrics]", "[metrics]\nport = 9464")
    daemon.config_path.write_text(text)
    line = one_line_failure(daemon, daemon.environment())
    assert line.startswith("totpd: error: ")
    assert "metrics.port: unknown key (known: listen)" in line


def credentials_env(daemon: Daemon, directory: Path) -> dict[str, str]:
    """The environment of a unit with LoadCredential*=, and no secret in the environment."""
    env = daemon.environment(CREDENTIALS_DIRECTORY=str(directory))
    env.pop(config_module.SIGNATURE_SECRET_ENV, None)
    return env


def test_a_vault_key_credential_of_the_wrong_size_fails_fast(
    daemon: Daemon, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "vonage-signature-secret").write_text("a-secret")
    (credentials / "vonage-signature-secret").chmod(0o400)
    (credentials / "totpd-vault-key").write_bytes(b"short")
    (credentials / "totpd-vault-key").chmod(0o400)
    line = one_line_failure(daemon, credentials_env(daemon, credentials))
    assert line.startswith("totpd: error: credential ")
    assert "not a 32-byte vault key" in line


def test_an_unreadable_vault_key_credential_fails_fast(daemon: Daemon, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    (credentials / "totpd-vault-key").mkdir(parents=True)  # not a file: cannot be read
    line = one_line_failure(daemon, credentials_env(daemon, credentials))
    assert line.startswith("totpd: error: ")
    assert "totpd-vault-key" in line


def test_an_empty_signature_secret_credential_fails_fast(daemon: Daemon, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "vonage-signature-secret").write_text("")
    (credentials / "vonage-signature-secret").chmod(0o400)
    line = one_line_failure(daemon, credentials_env(daemon, credentials))
    assert line == (f"totpd: error: credential: {credentials}/vonage-signature-secret is empty")


def test_no_signature_secret_anywhere_fails_fast(daemon: Daemon, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    line = one_line_failure(daemon, credentials_env(daemon, credentials))
    assert line.startswith("totpd: error: no Vonage signature secret")


JOURNAL_HOST = r"""
import json, os, socket, subprocess, sys, time
config_path, port = sys.argv[1], int(sys.argv[2])
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/systemd"], check=True)
os.makedirs("/run/systemd/journal")
journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
journal.bind("/run/systemd/journal/socket")
journal.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
stream = open(os.path.join(os.path.dirname(config_path), "stderr.log"), "wb")
st = os.fstat(stream.fileno())
env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
daemon = subprocess.Popen([sys.executable, "-m", "totpd", "--config", config_path, "serve"],
                          stdout=stream, stderr=stream, env=env)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            break
    time.sleep(0.05)
call = subprocess.run([sys.executable, "-m", "totpd", "--config", config_path, "call",
                       "--press", sys.argv[3], "--press", "1", "--press", "", "--press", ""],
                      capture_output=True, text=True, timeout=60)
daemon.terminate()
daemon.wait(timeout=30)
journal.settimeout(0.5)
datagrams = []
try:
    while True:
        datagrams.append(journal.recv(1 << 16).hex())
except TimeoutError:
    pass
print(json.dumps({"call_rc": call.returncode, "datagrams": datagrams,
                  "stderr": open(stream.name).read()}))
"""


@pytest.mark.root  # for a mount namespace where our own socket stands in for journald's
def test_under_journald_the_daemon_logs_a_call_as_structured_fields(daemon: Daemon) -> None:
    # `serve` detects journald from $JOURNAL_STREAM; a private mount namespace puts our own
    # socket where libsystemd sends entries, so this reads what journald would store.
    done = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            sys.executable,
            "-c",
            JOURNAL_HOST,
            str(daemon.config_path),
            str(daemon.port),
            PIN,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["call_rc"] == 0
    assert report["stderr"] == "", "under journald nothing is written to stderr"
    entries = [parse_journal_datagram(bytes.fromhex(d)) for d in report["datagrams"]]
    assert all(entry["SYSLOG_IDENTIFIER"] == "totpd" for entry in entries)
    pin = [e for e in entries if e.get("STEP") == "pin" and e.get("OUTCOME") == "accepted"]
    assert len(pin) == 1, entries
    assert pin[0]["USER"] == "alice"
    assert pin[0]["CALLER"]
    assert pin[0]["CALL_UUID"]
    assert pin[0]["PRIORITY"] == "6"
    call_entries = [e for e in entries if e.get("CALL_UUID") == pin[0]["CALL_UUID"]]
    assert len(call_entries) >= 2, "the call can be followed by its CALL_UUID"
    audit = [e for e in call_entries if e.get("ACCOUNT") == "github"]
    assert audit, "the code read-out is an audit entry naming the account"
    assert not any(PIN in value for entry in entries for value in entry.values())


def signed_post(port: int, path: str, fields: Mapping[str, object]) -> tuple[int, object]:
    """POST `fields` as JSON, signed as Vonage signs webhooks."""
    body = json.dumps(fields).encode()
    token = vonage.sign_webhook(body, SIGNATURE_SECRET.encode(), time.time(), APPLICATION_ID)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method="POST",
        headers={"Authorization": token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - fixed URL
        return response.status, json.loads(response.read())


def input_path(ncco: object) -> str:
    """The path of the NCCO's input eventUrl (built from public_url)."""
    assert isinstance(ncco, list)
    url = next(action["eventUrl"][0] for action in ncco if action["action"] == "input")
    return str(urllib.parse.urlsplit(url).path)


def test_sigterm_lets_an_in_flight_pin_check_finish(tmp_path: Path) -> None:
    notifications = Notifications()
    daemon = Daemon(tmp_path, notifications)
    # Argon2 that takes about two seconds: a PIN check is in flight when SIGTERM arrives.
    slow = daemon.config_path.read_text()
    for key, value in (("argon2_time_cost", 10), ("argon2_memory_kib", 262144)):
        slow = re.sub(rf"^{key} = \d+$", f"{key} = {value}", slow, flags=re.MULTILINE)
    daemon.config_path.write_text(slow)
    daemon.enrol()
    daemon.start()
    try:
        notifications.wait_for("READY", "1")
        call = {"from": "447700900001", "to": "447700900999", "uuid": "call-drain"}
        status, ncco = signed_post(daemon.port, "/webhooks/answer", call)
        assert status == 200
        path = input_path(ncco)
        if not path.endswith("pin"):  # a user-number step first
            _, ncco = signed_post(daemon.port, path, {**call, "dtmf": {"digits": "1"}})
            path = input_path(ncco)
        result: list[tuple[int, object]] = []
        pin_step = threading.Thread(
            target=lambda: result.append(
                signed_post(
                    daemon.port, path, {**call, "dtmf": {"digits": PIN, "timed_out": False}}
                )
            )
        )
        pin_step.start()
        time.sleep(0.3)
        daemon.signal(signal.SIGTERM)
        notifications.wait_for("STOPPING", "1")
        time.sleep(0.2)
        assert pin_step.is_alive(), "the PIN check was still running"
        assert not port_accepts(daemon.port), "no new connections while draining"
        pin_step.join(timeout=20)
        assert result, "the in-flight webhook was answered"
        status, ncco = result[0]
        assert status == 200
        assert "GitHub" in json.dumps(ncco)
        # It was told to stop already: a second SIGTERM could land after its loop has closed.
        assert daemon.process is not None
        assert daemon.process.wait(timeout=30) == 0
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.process.kill()
        notifications.close()


@pytest.mark.redis
async def test_the_status_line_says_when_redis_is_down_and_keeps_going(
    open_app: Opener, redis_server: RedisServer
) -> None:
    services, _ = await open_app(storage=redis_server.url)
    assert await daemon_module._status(services) == "0 calls in progress, 0 served, 0 lockouts"
    redis_server.stop()
    down = await daemon_module._status(services)  # a reload's READY=1 and STATUS= depend on it
    assert down == "call storage down, 0 served; lockout storage down"
    redis_server.start()
    assert await daemon_module._status(services) == "0 calls in progress, 0 served, 0 lockouts"
