"""Real notification servers on loopback: an ntfy publish endpoint and an SMTP server.

`Ntfy` speaks ntfy's publish API (docs.ntfy.sh/publish): JSON to the root URL
(`{"topic", "message", "title", "priority", "tags"}`, which is what Apprise's ntfy:// sends),
or a plain body to `/<topic>` with `Title`/`Priority` headers; an access token arrives as
`Authorization: Bearer tk_...`. It answers 200 with the message as ntfy does. `mode` makes it
refuse (HTTP 500) or hang (never answer) to play a broken server.

`Smtp` is aiosmtpd's server in its own thread, keeping each message as received.
"""

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.helpers import free_port

TOKEN = "tk_k3yb0ardc4tn0t1fyt0ken"  # the test server's access token
TOPIC = "totpd-alerts-9f2c"  # on ntfy.sh a topic is itself a password


@dataclass(frozen=True)
class Published:
    """One message as ntfy would store it, and when it arrived (time.monotonic())."""

    topic: str
    title: str
    message: str
    priority: str
    authorization: str
    arrived_s: float


@dataclass
class Ntfy:
    """An ntfy server's publish side; run it with aiohttp's test server (`app()`)."""

    token: str = ""  # when set, publishing needs "Authorization: Bearer <token>"
    mode: str = "ok"  # "ok", "fail" (HTTP 500) or "hang" (no answer, ever)
    published: list[Published] = field(default_factory=list)
    requests: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        """The aiohttp application: POST|PUT / (JSON) and POST|PUT /{topic} (plain body)."""
        app = web.Application()
        app.router.add_route("POST", "/", self._publish)
        app.router.add_route("PUT", "/", self._publish)
        app.router.add_route("POST", "/{topic}", self._publish)
        app.router.add_route("PUT", "/{topic}", self._publish)
        return app

    async def _publish(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "fail":
            return web.json_response({"code": 50001, "http": 500, "error": "boom"}, status=500)
        authorization = request.headers.get("Authorization", "")
        if self.token and authorization != f"Bearer {self.token}":
            return web.json_response(
                {"code": 40101, "http": 401, "error": "unauthorized"}, status=401
            )
        topic = request.match_info.get("topic", "")
        if topic:
            fields: dict[str, Any] = {
                "message": (await request.read()).decode(),
                "title": request.headers.get("Title", request.headers.get("X-Title", "")),
                "priority": request.headers.get("Priority", request.headers.get("X-Priority", "")),
            }
        else:
            fields = await request.json()
            topic = fields.get("topic", "")
        if not topic or not isinstance(fields.get("message", ""), str):
            return web.json_response(
                {"code": 40009, "http": 400, "error": "bad request"}, status=400
            )
        self.published.append(
            Published(
                topic,
                str(fields.get("title", "")),
                str(fields.get("message", "")),
                str(fields.get("priority", "") or request.headers.get("X-Priority", "")),
                authorization,
                time.monotonic(),
            )
        )
        self.arrived.set()
        return web.json_response(
            {
                "id": f"m{len(self.published)}",
                "time": int(time.time()),
                "event": "message",
                "topic": topic,
                "title": fields.get("title", ""),
                "message": fields["message"],
            }
        )


@dataclass(frozen=True)
class Mail:
    """One message as the SMTP server received it, and when (time.monotonic())."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage
    arrived_s: float

    @property
    def text(self) -> str:
        """The plain-text body."""
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())


class _Handler:
    def __init__(self, inbox: "Smtp") -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.inbox.received.append(
            Mail(
                str(envelope.mail_from),
                tuple(str(r) for r in envelope.rcpt_tos),
                message,
                time.monotonic(),
            )
        )
        self.inbox.arrived.set()
        return "250 Message accepted for delivery"


class Smtp:
    """aiosmtpd on 127.0.0.1 in a thread of its own (use as a context manager)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Mail] = []
        self.arrived = threading.Event()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "Smtp":
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def url(self, to: str = "owner@example.org") -> str:
        """The Apprise mailto:// URL that delivers to this server, unencrypted, without login."""
        return f"mailto://localhost:{self.port}?from=totpd@example.org&to={to}"


def ntfy_url(server: TestServer, topic: str = TOPIC, token: str = TOKEN) -> str:
    """The Apprise URL publishing to `topic` on `server` with an access token."""
    return f"ntfy://{token}@127.0.0.1:{server.port}/{topic}"


def write_urls(tmp_path: Path, *lines: str, mode: int = 0o600) -> Path:
    """A notify.urls file holding `lines`, with `mode`."""
    path = tmp_path / "notify.urls"
    path.write_text("".join(f"{line}\n" for line in lines))
    path.chmod(mode)
    return path


def notify_section(path: Path) -> str:
    """The [notify] section naming `path`."""
    return f'[notify]\nurls_file = "{path}"\n'
