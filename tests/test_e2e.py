"""The daemon as a sysadmin runs it, called by `totpd call` as Vonage would call it."""

import re
from collections.abc import Callable
from pathlib import Path

from tests.helpers import GITHUB_SEED, GMAIL_SEED, PIN, codes_near_now, run_totpd

Daemon = Callable[..., tuple[Path, int]]


def heard_codes(transcript: str) -> list[str]:
    return [m.replace(" ", "") for m in re.findall(r"code is: ([\d ]+)\.", transcript)]


def test_a_whole_call_through_the_emulator(daemon: Daemon) -> None:
    config_path, _ = daemon()
    call = run_totpd(
        config_path,
        "call",
        "--press",
        PIN,
        "--press",
        "2",
        "--press",
        "2",
        "--press",
        "1",
        "--press",
        "",
        "--press",
        "",
    )
    assert call.returncode == 0, call.stdout + call.stderr
    said = call.stdout
    assert "totpd: Welcome.\ntotpd: Please enter your PIN, then press hash.\n" in said
    assert "For GitHub, press 1. For Gmail, press 2." in said
    gmail, github = heard_codes(said)
    assert gmail in codes_near_now(GMAIL_SEED)
    assert github in codes_near_now(GITHUB_SEED)
    assert said.rstrip().endswith("totpd: Goodbye.\n[call completed]")
    assert PIN not in said  # the emulator masks what the caller types at the PIN step


def test_get_answer_and_withheld_caller(daemon: Daemon) -> None:
    config_path, _ = daemon()
    call = run_totpd(
        config_path, "call", "--answer-method", "GET", "--from", "", "--press", PIN, "--press", "1"
    )
    assert call.returncode == 0, call.stdout + call.stderr
    assert "For GitHub, press 1." in call.stdout
    assert heard_codes(call.stdout)[0] in codes_near_now(GITHUB_SEED)


def test_wrong_secret_is_refused_and_said_clearly(daemon: Daemon) -> None:
    config_path, _ = daemon()
    env = {"TOTPD_VONAGE_SIGNATURE_SECRET": "not-the-daemons-secret-at-all-0123456789"}
    call = run_totpd(config_path, "call", "--press", PIN, env=env)
    assert call.returncode == 1
    assert "answer webhook failed: HTTP 401" in call.stdout


def test_the_code_read_matches_account_code(daemon: Daemon) -> None:
    config_path, _ = daemon()
    shown = run_totpd(config_path, "account", "code", "github")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split()[0] in codes_near_now(GITHUB_SEED)


def test_malformed_http_gets_400_and_does_not_fill_the_log(daemon: Daemon) -> None:
    import socket

    config_path, port = daemon()
    for request in (
        b"POST /webhooks/answer HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n",
        b"GET /webhooks/answer HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(request)
            assert conn.recv(64).split(b" ")[1] == b"400"
    call = run_totpd(config_path, "call", "--press", PIN, "--press", "1")  # still serving
    assert call.returncode == 0
    logged = (config_path.parent / "daemon.log").read_text()
    assert "Error handling request" not in logged
    assert "Traceback" not in logged
