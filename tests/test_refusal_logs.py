"""Refusals an outsider can cause, in bursts, against `totpd serve`: each costs a metric and at
most a throttled line, never a traceback, so the audit lines stay in the journal."""

import asyncio
import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.helpers import (
    APPLICATION_ID,
    CALLER,
    MALFORMED_HTTP,
    PIN,
    SIGNATURE_SECRET,
    run_totpd,
)
from tests.servers import Replica
from totpd import vonage

BURST = 60  # of each kind
REASON_LINES = 2  # a throttled reason: its first line, then one with the count of the rest


def token(body: bytes) -> str:
    """An Authorization header value for `body`, signed as Vonage signs it."""
    return vonage.sign_webhook(body, SIGNATURE_SECRET.encode(), time.time(), APPLICATION_ID)


def signed_head(body: bytes, path: str = "/webhooks/answer", declared: int = 0) -> bytes:
    """The head of a signed POST of `body`, declaring `declared` bytes (len(body) by default)."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {token(body)}\r\nContent-Length: {declared or len(body)}\r\n\r\n"
    ).encode()


def answer_body(n: int) -> bytes:
    """An answer webhook's body for call number `n`."""
    return json.dumps({"uuid": f"burst-{n}", "from": CALLER}).encode()


async def send_and_hang_up(port: int, sent: bytes, reset: bool = False) -> None:
    """Connect, send `sent`, wait for the daemon to take it in, and hang up (with a TCP
    reset when `reset`)."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    await writer.drain()
    await asyncio.sleep(0.3)  # the daemon is now waiting for the rest
    if reset:  # SO_LINGER 0: close() sends RST instead of FIN
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def send_and_read(port: int, sent: bytes) -> bytes:
    """Connect, send `sent`, read until the daemon closes the connection (10 s at most)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(sent)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def burst(send: Callable[[int], Awaitable[object]]) -> None:
    """BURST of one kind, all at once."""
    await asyncio.gather(*(send(n) for n in range(BURST)), return_exceptions=True)


def log_lines(replica: Replica) -> list[str]:
    """The daemon's log so far, one entry per line."""
    return replica.log().splitlines()


def assert_quiet(lines: list[str], reasons: int) -> None:
    """No traceback, and no more lines than `reasons` throttled reasons can write."""
    text = "\n".join(lines)
    assert "Traceback" not in text, text[-3000:]
    assert "ERROR" not in text, text[-3000:]
    assert len(lines) <= reasons * REASON_LINES, text[-3000:]


async def test_a_burst_of_every_refusal_costs_a_metric_and_few_lines(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    replica = Replica(tmp_path / "daemon")
    replicas.append(replica)
    replica.start()
    port = replica.port
    started = len(log_lines(replica))
    body = answer_body(0)
    big = b" " * 0x4000
    kinds: dict[str, Callable[[int], Awaitable[object]]] = {
        "mid_headers": lambda n: send_and_hang_up(port, b"POST /webhooks/answer HTTP/1.1\r\nHo"),
        "mid_body": lambda n: send_and_hang_up(
            port, signed_head(answer_body(n)) + answer_body(n)[:10]
        ),
        "mid_body_reset": lambda n: send_and_hang_up(
            port, signed_head(answer_body(n)) + answer_body(n)[:10], reset=True
        ),
        "unsigned_mid_body": lambda n: send_and_hang_up(
            port, b"POST /webhooks/answer HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n{"
        ),
        "before_the_answer": lambda n: send_and_hang_up(
            port, signed_head(answer_body(n + 1000)) + answer_body(n + 1000), reset=True
        ),
        "oversized_declared": lambda n: send_and_read(
            port, signed_head(body, declared=1_000_000) + body
        ),
        "oversized_chunked": lambda n: send_and_read(
            port,
            b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            + f"Authorization: {token(big)}\r\n\r\n4000\r\n".encode()
            + big
            + b"\r\n0\r\n\r\n",
        ),
    }
    for kind, raw in MALFORMED_HTTP.items():
        kinds[f"malformed_{kind}"] = lambda n, raw=raw: send_and_read(port, raw)  # type: ignore[misc]
    for send in kinds.values():
        await burst(send)
    await asyncio.sleep(1.5)  # the daemon sees the last hang-ups
    lines = log_lines(replica)[started:]
    # Reasons: client_gone, unsigned, too_large, malformed_http, header_too_large, and the
    # signed answers a hang-up came too late to stop (they are calls; no line each either).
    assert_quiet(lines, reasons=8)
    assert replica.metric("totpd_webhook_rejected_total", reason="client_gone") >= BURST
    assert replica.metric("totpd_webhook_rejected_total", reason="malformed_http") >= BURST * 10
    assert replica.metric("totpd_webhook_rejected_total", reason="too_large") >= 2 * BURST
    assert replica.metric("totpd_webhook_connections") <= 1  # every one of them closed
    # A genuine call after it all reads a code, and its audit line is there.
    call = run_totpd(replica.config_path, "call", "--press", PIN, "--press", "")
    assert "code is" in call.stdout, call.stdout + call.stderr
    assert "code read: user alice" in replica.log()


async def test_a_burst_of_timeouts_costs_a_metric_and_few_lines(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    replica = Replica(tmp_path / "daemon", server_extra="header_timeout_s = 1\nbody_timeout_s = 1")
    replicas.append(replica)
    replica.start()
    port = replica.port
    started = len(log_lines(replica))
    await asyncio.gather(
        burst(lambda n: send_and_read(port, b"POST /webhooks/answer HTTP/1.1\r\nHost: x\r\n")),
        burst(lambda n: send_and_read(port, signed_head(answer_body(n)) + b"{")),
        burst(lambda n: send_and_read(port, b"")),  # connect and say nothing
    )
    lines = log_lines(replica)[started:]
    assert_quiet(lines, reasons=2)
    assert replica.metric("totpd_webhook_rejected_total", reason="header_timeout") == 2 * BURST
    assert replica.metric("totpd_webhook_rejected_total", reason="body_timeout") == BURST
