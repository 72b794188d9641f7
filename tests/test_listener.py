"""The webhook listener's connections over real sockets: every status it can answer is JSON
and names no server software."""

import asyncio
import json
import logging
import time
from dataclasses import replace
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from tests.helpers import CALLER, MALFORMED_HTTP, PIN, Client, Vonage, WebhookServer, spoken
from totpd.pins import PinHasher
from totpd.secrets.vault import vault_path
from totpd.services import Services

# What gives a server away: its name and version (aiohttp's default "Server" header reads
# "Python/3.11 aiohttp/3.x"), or an HTML error page.
TELLTALES = ("aiohttp", "python", "<html", "server")


def host_port(client: Client) -> tuple[str, int]:
    """Where the test server listens."""
    server = client.server
    assert server.port is not None
    return server.host, server.port


async def raw_exchange(client: Client, sent: bytes, timeout_s: float = 10.0) -> bytes:
    """Send `sent` on a new connection and read until the server closes it (or the timeout)."""
    host, port = host_port(client)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(sent)
        await writer.drain()
        chunks = []
        async with asyncio.timeout(timeout_s):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        return b"".join(chunks)
    finally:
        writer.close()


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def parse_answer(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of a raw HTTP/1.1 answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def assert_anonymous_json(status: int, headers: dict[str, str], body: bytes) -> None:
    """A JSON answer (or none, for 204) that names no server software."""
    assert "server" not in headers, (status, headers)
    everything = (json.dumps(headers) + body.decode("latin-1")).lower()
    for telltale in TELLTALES:
        assert telltale not in everything, (status, telltale, everything)
    if status == 204:
        assert body == b""
        return
    assert headers["content-type"].startswith("application/json"), (status, headers)
    document = json.loads(body)
    if status >= 400:
        assert isinstance(document, dict), document
        assert isinstance(document["error"], str), document


def signed_request(caller: Vonage, path: str, fields: dict[str, Any]) -> bytes:
    """A whole signed POST, as raw bytes."""
    body = json.dumps(fields).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {caller.token(body)}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.mark.parametrize("kind", sorted(MALFORMED_HTTP))
async def test_malformed_http_is_a_json_400_that_names_no_server(client: Client, kind: str) -> None:
    status, headers, body = parse_answer(await raw_exchange(client, MALFORMED_HTTP[kind]))
    assert status == 400
    assert_anonymous_json(status, headers, body)


async def test_every_status_of_the_handler_is_json_and_names_no_server(
    caller: Vonage, client: Client, services: Services
) -> None:
    seen: dict[int, str] = {}

    async def record(raw: bytes, expected: int) -> None:
        status, headers, body = parse_answer(await raw_exchange(client, raw))
        assert status == expected, body
        assert_anonymous_json(status, headers, body)
        seen[status] = body.decode()

    answer = {"uuid": caller.uuid, "from": CALLER}
    await record(signed_request(caller, "/webhooks/answer", answer), 200)
    await record(signed_request(caller, "/webhooks/answer", answer), 409)  # the same call
    await record(signed_request(caller, "/webhooks/event", {"uuid": "x", "status": "ringing"}), 204)
    await record(
        signed_request(caller, "/webhooks/input/pin", {"uuid": caller.uuid, "dtmf": 5}), 400
    )
    await record(b"POST /webhooks/answer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 401)
    await record(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 404)
    await record(b"DELETE /webhooks/answer HTTP/1.1\r\nHost: x\r\n\r\n", 405)
    big = b"{" + b" " * 20_000 + b"}"
    await record(
        b"POST /webhooks/answer HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + caller.token(big).encode()
        + b"\r\nContent-Length: %d\r\n\r\n" % len(big)
        + big,
        413,
    )
    # A fault on totpd's side: the secret store cannot be read (its vault file is gone).
    await record(signed_request(caller, "/webhooks/answer", {**answer, "uuid": "c2"}), 200)
    vault = vault_path(services.config)
    vault.rename(vault.with_suffix(".moved"))
    pin = {"uuid": "c2", "dtmf": {"digits": PIN, "timed_out": False}}
    await record(signed_request(caller, "/webhooks/input/pin", pin), 503)
    assert sorted(seen) == [200, 204, 400, 401, 404, 405, 409, 413, 503]


async def test_an_unexpected_fault_is_a_json_500_that_names_no_server(
    caller: Vonage, client: Client, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(services.roster, "current", broken)
    raw = signed_request(caller, "/webhooks/answer", {"uuid": caller.uuid, "from": CALLER})
    status, headers, body = parse_answer(await raw_exchange(client, raw))
    assert status == 500
    assert_anonymous_json(status, headers, body)
    assert json.loads(body) == {"error": "internal_error"}


# Slow requests: a forged token never waits for its body, headers and bodies have time limits,
# and the cap makes room for a genuine webhook ------------------------------------------------
def signed_head(caller: Vonage, path: str, body: bytes) -> bytes:
    """The head of a signed POST of `body` (the body itself is up to the test)."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {caller.token(body)}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()


async def opened(client: Client, sent: bytes = b"") -> tuple[asyncio.StreamReader, Any]:
    """A new connection that has sent `sent` and waits."""
    reader, writer = await asyncio.open_connection(*host_port(client))
    if sent:
        writer.write(sent)
        await writer.drain()
    return reader, writer


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One whole answer (head and Content-Length bytes of body) from a kept-alive connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    _, headers, _ = parse_answer(head)
    return head + await reader.readexactly(int(headers.get("content-length", "0")))


async def closed_within(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection, which it must within
    `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        return await reader.read()


def rejected(services: Services, reason: str) -> float:
    """totpd_webhook_rejected_total for `reason`."""
    value = services.metrics.registry.get_sample_value(
        "totpd_webhook_rejected_total", {"reason": reason}
    )
    return value or 0.0


@pytest.fixture
async def tight(aiohttp_client: AiohttpClient, services: Services) -> Client:
    """The webhook listener with one-second time limits and room for eight connections."""
    server = replace(
        services.config.server, header_timeout_s=1, body_timeout_s=1, max_connections=8
    )
    services.config = replace(services.config, server=server)
    return await aiohttp_client(WebhookServer(services))


@pytest.mark.parametrize(
    "reason", ["unsigned", "malformed_token", "bad_signature", "wrong_application"]
)
async def test_a_forged_token_is_refused_before_its_body_arrives(
    client: Client, caller: Vonage, reason: str
) -> None:
    body = json.dumps({"uuid": caller.uuid, "from": CALLER}).encode()
    match reason:
        case "bad_signature":
            authorization = Vonage(client, secret="a-guessed-secret-of-32-bytes-or-more").token(
                body
            )
        case "wrong_application":
            authorization = caller.token(body, app="other-app")
        case "malformed_token":
            authorization = "Bearer not.a.token"
        case _:
            authorization = ""
    head = (
        f"POST /webhooks/answer HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\n"
        f"Content-Length: {len(body) + 1000}\r\n\r\n"
    ).encode()
    reader, writer = await opened(client, head + body[:10])  # and the rest never comes
    try:
        status, headers, answer = parse_answer(await closed_within(reader, 3.0))
    finally:
        writer.close()
    assert (status, json.loads(answer)) == (401, {"error": reason})
    assert headers["connection"] == "close"


async def test_headers_that_never_end_are_cut_off(tight: Client, services: Services) -> None:
    started_s = time.monotonic()
    half_sent = await opened(tight, b"POST /webhooks/answer HTTP/1.1\r\nHost: x\r\nX-A: ")
    silent = await opened(tight)
    for reader, writer in (half_sent, silent):
        assert await closed_within(reader, 4.0) == b""  # closed: there is nothing to answer
        writer.close()
    assert time.monotonic() - started_s >= 1.0
    assert rejected(services, "header_timeout") == 2


async def test_a_signed_request_whose_body_stalls_gets_408(
    tight: Client, services: Services
) -> None:
    caller = Vonage(tight)
    body = json.dumps({"uuid": caller.uuid, "from": CALLER}).encode()
    reader, writer = await opened(tight, signed_head(caller, "/webhooks/answer", body) + body[:5])
    try:
        status, headers, answer = parse_answer(await closed_within(reader, 4.0))
    finally:
        writer.close()
    assert (status, json.loads(answer)) == (408, {"error": "body_timeout"})
    assert headers["connection"] == "close"
    assert_anonymous_json(status, headers, answer)
    assert await services.calls.count() == 0
    assert rejected(services, "body_timeout") == 1


async def test_a_body_sent_in_pieces_within_the_limit_is_read(
    tight: Client, services: Services
) -> None:
    caller = Vonage(tight)
    body = json.dumps({"uuid": caller.uuid, "from": CALLER}).encode()
    reader, writer = await opened(tight, signed_head(caller, "/webhooks/answer", body))
    try:
        for piece in (body[:10], body[10:20], body[20:]):
            await asyncio.sleep(0.2)
            writer.write(piece)
        status, _, answer = parse_answer(await read_answer(reader))
    finally:
        writer.close()
    assert status == 200
    assert "enter your PIN" in spoken(json.loads(answer))


async def test_an_idle_keepalive_connection_outlasts_the_header_timeout(
    tight: Client, services: Services
) -> None:
    caller = Vonage(tight)
    reader, writer = await opened(tight)
    try:
        for uuid in ("call-1", "call-2"):  # the second request after an idle spell
            writer.write(signed_request(caller, "/webhooks/answer", {"uuid": uuid}))
            status, headers, _ = parse_answer(await read_answer(reader))
            assert status == 200
            assert headers.get("connection") != "close"
            await asyncio.sleep(2.5)
    finally:
        writer.close()
    assert rejected(services, "header_timeout") == 0


async def test_at_the_cap_the_longest_waiting_connection_makes_room_for_a_call(
    tight: Client, services: Services
) -> None:
    slow = []
    for _ in range(8):  # as many half-sent requests as the cap allows
        slow.append(await opened(tight, b"POST /webhooks/answer HTTP/1.1\r\nHost: x\r\n"))
        await asyncio.sleep(0.02)
    caller = Vonage(tight)
    answer = {"uuid": caller.uuid, "from": CALLER}
    pin = {"uuid": caller.uuid, "dtmf": {"digits": PIN, "timed_out": False}}
    # Each webhook on a new connection, as Vonage sends them.
    status, _, _ = parse_answer(
        await raw_exchange(tight, signed_request(caller, "/webhooks/answer", answer))
    )
    assert status == 200
    status, _, ncco = parse_answer(
        await raw_exchange(tight, signed_request(caller, "/webhooks/input/pin", pin))
    )
    assert status == 200
    assert "code is" in spoken(json.loads(ncco))
    # The two oldest made room (one per new connection), the newest still wait.
    for reader, _ in slow[:2]:
        assert await closed_within(reader, 1.0) == b""
    for reader, _ in slow[2:]:
        assert not reader.at_eof()
    assert rejected(services, "evicted") == 2
    for _, writer in slow:
        writer.close()


async def test_a_request_being_answered_is_never_evicted(tight: Client, services: Services) -> None:
    # Argon2 at a cost that takes a while: the PIN step is being answered while newcomers
    # arrive, far more of them than the cap.
    services.pins = PinHasher(
        replace(services.config.pins, argon2_time_cost=8, argon2_memory_kib=131072)
    )
    caller = Vonage(tight)
    assert (await caller.answer())[0] == 200
    pin_step = asyncio.create_task(caller.press("pin", PIN))
    await asyncio.sleep(0.1)
    newcomers = [
        await opened(tight, b"POST /webhooks/answer HTTP/1.1\r\nHost: x\r\n") for _ in range(30)
    ]
    status, ncco = await pin_step
    assert status == 200
    assert "code is" in spoken(ncco)
    assert rejected(services, "evicted") >= 22
    for _, writer in newcomers:
        writer.close()


async def test_a_caller_who_hangs_up_before_the_answer_costs_a_metric_and_no_error(
    tight: Client, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    services.pins = PinHasher(
        replace(services.config.pins, argon2_time_cost=4, argon2_memory_kib=65536)
    )
    caller = Vonage(tight)
    assert (await caller.answer())[0] == 200
    pin = {"uuid": caller.uuid, "dtmf": {"digits": PIN, "timed_out": False}}
    _, writer = await opened(tight, signed_request(caller, "/webhooks/input/pin", pin))
    await asyncio.sleep(0.05)  # the PIN is being checked
    writer.close()  # and the caller is gone before the answer
    deadline_s = time.monotonic() + 20
    while not rejected(services, "client_gone"):
        assert time.monotonic() < deadline_s
        await asyncio.sleep(0.05)
    assert rejected(services, "client_gone") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
