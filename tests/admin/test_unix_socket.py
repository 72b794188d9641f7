"""The admin page on a Unix socket (`[admin] listen = "unix:/run/totpd/admin.sock"`): served by a
real `totpd serve` over real HTTP, mode 0660 for the service's user and group only, made
safely (a stale socket replaced; a symlink, a file or a live socket never touched), removed at
shutdown. Only who may connect to it can reach the sign-in form and its lockout.
"""

import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.admin.helpers import ADMIN_PASSWORD, wait_for_unix_socket
from tests.helpers import enrol_demo, free_port, run_totpd, wait_for_port, write_config
from totpd import config as config_module

NOBODY = 65534
# Enough privilege for a process of another user to read this checkout and its interpreter
# (both under root-only directories here), and no more: not to write, not to bypass a mode.
READ_ANYTHING = ("--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search")


class Daemon:
    """`totpd serve` with the admin page on a Unix socket in `run_dir`."""

    def __init__(self, home: Path, run_dir: Path) -> None:
        self.home, self.socket = home, run_dir / "admin.sock"
        self.port = free_port()
        extra = f'[admin]\nlisten = "unix:{self.socket}"\n'
        self.config_path = write_config(
            home, extra, listen=f"127.0.0.1:{self.port}", metrics=f"127.0.0.1:{free_port()}"
        )
        loaded = config_module.load(self.config_path)
        loaded.paths.state_dir.mkdir(mode=0o700, parents=True)
        enrol_demo(loaded, ("github", "gmail"))
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *prefix: str) -> list[str]:
        """The `serve` command line, behind `prefix` (e.g. setpriv)."""
        return [*prefix, sys.executable, "-m", "totpd", "--config", str(self.config_path), "serve"]

    def start(self, *prefix: str) -> None:
        """Start it and wait until the admin socket accepts."""
        with (self.home / "daemon.log").open("wb") as log:
            self.process = subprocess.Popen(
                self.command(*prefix), stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port)
        wait_for_unix_socket(self.socket)

    def refused(self) -> str:
        """Run it expecting a refusal at start: the one line it printed."""
        done = subprocess.run(
            self.command(), capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done.stderr.strip().splitlines()[-1]

    def stop(self) -> int:
        """SIGTERM and wait."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon whose admin socket goes in tmp_path/run (mode 0750, as RuntimeDirectory=)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o750)
    made = Daemon(tmp_path, run_dir)
    yield made
    if made.process is not None and made.process.poll() is None:
        made.process.kill()
        made.process.wait()


def test_the_socket_is_the_service_users_and_its_groups_only(daemon: Daemon) -> None:
    daemon.start()
    mode = daemon.socket.lstat()
    assert stat.S_ISSOCK(mode.st_mode)
    assert stat.S_IMODE(mode.st_mode) == 0o660
    assert (mode.st_uid, mode.st_gid) == (os.geteuid(), os.getegid())
    assert daemon.stop() == 0


async def test_the_page_answers_over_the_socket_and_signs_in(daemon: Daemon) -> None:
    daemon.start()
    assert (
        run_totpd(daemon.config_path, "admin", "passwd", stdin=f"{ADMIN_PASSWORD}\n").returncode
        == 0
    )
    connector = aiohttp.UnixConnector(path=str(daemon.socket))
    async with aiohttp.ClientSession(connector=connector) as browser:
        async with browser.get("http://localhost/login") as page:
            assert page.status == 200
            html = await page.text()
        token = html.split('name="csrf" value="')[1].split('"')[0]
        form = {"csrf": token, "password": ADMIN_PASSWORD}
        async with browser.post("http://localhost/login", data=form) as signed_in:
            assert signed_in.status == 200
            assert signed_in.url.path == "/"
            assert "github" in await signed_in.text()
    assert daemon.stop() == 0
    assert "admin signed in from the Unix socket" in (daemon.home / "daemon.log").read_text()


async def test_a_tls_proxy_on_the_socket_gets_secure_cookies(daemon: Daemon) -> None:
    """Caddy's `reverse_proxy unix//run/totpd/admin.sock` is on this machine, like loopback."""
    daemon.start()
    connector = aiohttp.UnixConnector(path=str(daemon.socket))
    async with aiohttp.ClientSession(connector=connector) as proxy:
        headers = {"X-Forwarded-Proto": "https"}
        async with proxy.get("http://localhost/login", headers=headers) as page:
            assert page.headers["Set-Cookie"].startswith("__Host-totpd-sign-in=")
            assert "Secure" in page.headers["Set-Cookie"]
    assert daemon.stop() == 0


def test_a_stale_socket_is_replaced_and_the_socket_removed_at_shutdown(daemon: Daemon) -> None:
    with socket.socket(socket.AF_UNIX) as leftover:  # what a killed daemon leaves behind
        leftover.bind(str(daemon.socket))
    daemon.start()
    assert daemon.stop() == 0
    assert not daemon.socket.exists()


def test_a_symlink_at_the_socket_path_is_refused_and_not_followed(
    daemon: Daemon, tmp_path: Path
) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me")
    target.chmod(0o600)
    daemon.socket.symlink_to(target)
    line = daemon.refused()
    assert line == (
        f"totpd: error: cannot listen for admin page on unix:{daemon.socket}: it exists and is"
        " not a socket (totpd replaces only a stale socket)"
    )
    assert daemon.socket.is_symlink()
    assert target.read_text() == "keep me"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_file_at_the_socket_path_is_refused_and_left_alone(daemon: Daemon) -> None:
    daemon.socket.write_text("not a socket")
    assert "it exists and is not a socket" in daemon.refused()
    assert daemon.socket.read_text() == "not a socket"


def test_a_live_socket_at_the_path_is_refused_and_left_alone(daemon: Daemon) -> None:
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(daemon.socket))
        other.listen()
        assert daemon.refused().endswith("another process is listening on it")
        assert stat.S_ISSOCK(daemon.socket.lstat().st_mode)


def test_a_directory_others_may_write_is_refused(daemon: Daemon) -> None:
    daemon.socket.parent.chmod(0o1777)  # like /tmp: anyone could swap the socket for a link
    assert daemon.refused() == (
        f"totpd: error: cannot listen for admin page on unix:{daemon.socket}:"
        f" {daemon.socket.parent} is writable by other users; put the socket in a directory"
        " only totpd can write (RuntimeDirectory=totpd gives /run/totpd)"
    )
    assert not daemon.socket.exists()


@pytest.mark.root
def test_the_socket_belongs_to_the_user_and_group_the_daemon_runs_as(
    daemon: Daemon, tmp_path: Path
) -> None:
    for path in (daemon.socket.parent, *tmp_path.joinpath("state").rglob("*"), tmp_path / "state"):
        os.chown(path, NOBODY, NOBODY)
    daemon.start("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *READ_ANYTHING)
    mode = daemon.socket.lstat()
    assert (mode.st_uid, mode.st_gid, stat.S_IMODE(mode.st_mode)) == (NOBODY, NOBODY, 0o660)
    assert daemon.stop() == 0


CONNECT = """
import socket, sys
with socket.socket(socket.AF_UNIX) as sock:
    try:
        sock.connect(sys.argv[1])
    except PermissionError:
        print("refused")
    else:
        print("connected")
"""


@pytest.mark.root
def test_only_the_service_user_and_its_group_can_reach_the_sign_in_form(daemon: Daemon) -> None:
    """Three wrong passwords lock the page for everyone: so no other local user may try."""
    daemon.start()
    group = daemon.socket.lstat().st_gid

    def connect_as(*groups: str) -> str:
        done = subprocess.run(
            [
                *("setpriv", "--reuid=nobody", "--regid=nogroup", *groups, *READ_ANYTHING),
                *(sys.executable, "-c", CONNECT, str(daemon.socket)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    assert connect_as("--clear-groups") == "refused"
    assert connect_as(f"--groups={group}") == "connected"
    assert daemon.stop() == 0
