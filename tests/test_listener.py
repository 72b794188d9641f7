"""The webhook listener's connections over real sockets: every status it can answer is JSON
and names no server software."""

import asyncio
import json
from typing import Any

import pytest

from tests.helpers import CALLER, PIN, Client, Vonage
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


MALFORMED_HTTP = {
    "not_http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    "bad_method": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_version": b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    "missing_host": b"GET / HTTP/1.1\r\n\r\n",
    "bad_header_name": b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
    "header_without_colon": b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nX-A a\r\n\r\n",
    "control_in_header": b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "space_before_colon": b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nX-A : x\r\n\r\n",
    "two_lengths": (
        b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nx"
    ),
    "length_and_chunked": (
        b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "negative_length": b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "bad_chunk_size": (
        b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nabc\r\n"
    ),
    "unknown_transfer_encoding": (
        b"POST /webhooks/event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
    ),
    "long_request_line": b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "long_header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n",
    "many_headers": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n",
    "bad_url": b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",
}


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
