"""deploy/Caddyfile in front of a real daemon: only /webhooks/* reaches totpd, bodies are
capped, and a whole emulated call goes through the proxy.

The site address comes from {$TOTPD_HOST}; a plain http:// address here keeps Caddy from
asking a CA for a certificate, which is the only difference from production.
"""

import http.client
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import DEPLOY, PIN, free_port, run_totpd, wait_for_port

CADDYFILE = DEPLOY / "Caddyfile"
Daemon = Callable[..., tuple[Path, int]]


@pytest.fixture
def caddy() -> str:
    """The caddy binary (Debian package caddy)."""
    found = shutil.which("caddy")
    assert found, "caddy is missing: scripts/setup installs the Debian package caddy"
    return found


@pytest.fixture
def proxy(caddy: str, daemon: Daemon, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """Caddy with the shipped Caddyfile in front of a daemon: (daemon config, proxy port).

    Caddy's output goes to tmp_path/caddy.log.
    """
    config_path, daemon_port = daemon()
    port = free_port()
    home = tmp_path / "caddy-home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "TOTPD_HOST": f"http://127.0.0.1:{port}",
        "TOTPD_UPSTREAM": f"127.0.0.1:{daemon_port}",
        "TOTPD_CADDY_ADMIN": "off",
    }
    with (tmp_path / "caddy.log").open("wb") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port)
        yield config_path, port
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One HTTP request to the proxy; (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_caddy_accepts_the_caddyfile(caddy: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path), "TOTPD_CADDY_ADMIN": "off"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    formatted = subprocess.run(
        [caddy, "fmt", str(CADDYFILE)], capture_output=True, text=True, timeout=60, check=True
    )
    assert formatted.stdout == CADDYFILE.read_text(), "run: caddy fmt --overwrite deploy/Caddyfile"


def test_webhooks_reach_totpd_through_the_proxy(proxy: tuple[Path, int]) -> None:
    _, port = proxy
    status, body = request(port, "POST", "/webhooks/answer", b"{}")
    assert status == 401  # totpd's answer: the request carried no signed JWT
    assert b"unsigned" in body


@pytest.mark.parametrize(
    "path", ["/metrics", "/", "/admin", "/webhooks/../metrics", "/webhooksx", "/%2e%2e/metrics"]
)
def test_nothing_but_webhooks_is_exposed(proxy: tuple[Path, int], path: str) -> None:
    _, port = proxy
    status, _ = request(port, "GET", path)
    assert status == 404


def test_an_oversized_body_is_refused_before_totpd(proxy: tuple[Path, int]) -> None:
    _, port = proxy
    status, _ = request(port, "POST", "/webhooks/event", b"{" + b" " * 64 * 1024 + b"}")
    assert status == 413


def test_a_whole_call_through_the_proxy(proxy: tuple[Path, int]) -> None:
    config_path, port = proxy
    call = run_totpd(
        config_path,
        "call",
        "--url",
        f"http://127.0.0.1:{port}",
        "--press",
        PIN,
        "--press",
        "1",
        "--press",
        "",
        "--press",
        "",
    )
    assert call.returncode == 0, call.stdout + call.stderr
    assert "code is:" in call.stdout


def test_the_access_log_keeps_no_token_and_no_query(
    proxy: tuple[Path, int], tmp_path: Path
) -> None:
    _, port = proxy
    token = "eyJhbGciOiJIUzI1NiJ9.secret-claims.secret-signature"
    status, _ = request(
        port,
        "POST",
        "/webhooks/event?from=447700900001",
        b"{}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 401
    log = (tmp_path / "caddy.log").read_text()
    assert "/webhooks/event" in log  # the request was logged ...
    assert "secret-signature" not in log  # ... without its JWT
    assert "447700900001" not in log  # ... or the caller number in the query
