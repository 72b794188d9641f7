"""Servers of our own and calls placed to them over real HTTP: a redis-server, `totpd serve`
replicas that can be killed -9 and started again, and a Vonage line of signed webhooks.

The fixtures built on them (`redis_server`, `replicas`) are in tests/conftest.py.
"""

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import (
    APPLICATION_ID,
    CALLED,
    SIGNATURE_SECRET,
    WRONG_PIN,
    enrol_demo,
    free_port,
    wait_for_port,
    write_config,
)
from totpd import config as config_module
from totpd import vonage
from totpd.emulator import plain_text


class RedisServer:
    """A redis-server of our own on a free port, without persistence; stop and start at will."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The `[lockout] storage` URI of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or start again, empty) on the same port."""
        self.directory.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        with (self.directory / "redis.log").open("ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def stop(self) -> None:
        """Stop the server (Redis "goes away")."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class Replica:
    """One `totpd serve` process with its own config and state directory."""

    def __init__(self, home: Path, extra: str) -> None:
        home.mkdir(parents=True)
        self.home = home
        self.port, self.metrics_port = free_port(), free_port()
        self.config_path = write_config(
            home, extra, listen=f"127.0.0.1:{self.port}", metrics=f"127.0.0.1:{self.metrics_port}"
        )
        self.config = config_module.load(self.config_path)
        self.config.paths.state_dir.mkdir(mode=0o700, parents=True)
        enrol_demo(self.config, ("github",))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """Where its webhooks are."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start `totpd serve` and wait until it listens."""
        command = [sys.executable, "-m", "totpd", "--config", str(self.config_path), "serve"]
        with (self.home / "daemon.log").open("ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        wait_for_port(self.metrics_port)

    def kill(self) -> None:
        """kill -9: no clean-up, no flush, nothing."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        """SIGTERM, as systemd stops it."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def log(self) -> str:
        """What the daemon logged so far."""
        return (self.home / "daemon.log").read_text(errors="replace")

    def metric(self, name: str, **labels: str) -> float:
        """One sample scraped from GET /metrics (0 when absent)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return sample(text, name, **labels)

    def pins_checked(self) -> float:
        """Wrong PINs that reached Argon2 in this process's life."""
        return self.metric("totpd_pin_failures_total", layer="pin")


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


def lockout_config(storage: str = "embedded", **limits: str) -> str:
    """A `[lockout]` section."""
    lines = [f'storage = "{storage}"'] + [f'{key} = "{value}"' for key, value in limits.items()]
    return "[lockout]\n" + "\n".join(lines) + "\n"


def new_session() -> aiohttp.ClientSession:
    """An HTTP client with no keep-alive: a connection never outlives a killed daemon."""
    connector = aiohttp.TCPConnector(force_close=True)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))


@dataclass
class Heard:
    """One webhook's answer: its HTTP status and what the caller hears."""

    status: int
    said: str
    ncco: Any = None

    def next_step(self) -> str | None:
        """The step the NCCO's input waits for, if any."""
        if self.status != 200 or not isinstance(self.ncco, list):
            return None
        for action in self.ncco:
            if action.get("action") == "input":
                step: str = urlsplit(action["eventUrl"][0]).path.rsplit("/", 1)[-1]
                return step
        return None


@dataclass
class Line:
    """Vonage, as far as totpd can tell: signed webhooks to one daemon's base URL."""

    session: aiohttp.ClientSession
    base_url: str
    secret: bytes = SIGNATURE_SECRET.encode()
    sent: list[tuple[str, bytes, str]] = field(default_factory=list)

    async def post(self, path: str, fields: dict[str, Any]) -> Heard:
        """POST `fields` as JSON, signed as Vonage signs it."""
        body = json.dumps(fields).encode()
        token = vonage.sign_webhook(body, self.secret, time.time(), APPLICATION_ID)
        self.sent.append((path, body, token))
        return await self.send(path, body, token)

    async def send(self, path: str, body: bytes, token: str) -> Heard:
        """POST exactly these bytes with exactly this Authorization header (for replays)."""
        headers = {"Authorization": token, "Content-Type": "application/json"}
        async with self.session.post(self.base_url + path, data=body, headers=headers) as reply:
            try:
                ncco = await reply.json(content_type=None)
            except ValueError:
                ncco = None
        said = ""
        if isinstance(ncco, list):
            said = " ".join(plain_text(a["text"]) for a in ncco if a.get("action") == "talk")
        return Heard(reply.status, said, ncco)


async def place_call(
    line: Line, caller: str, pins: Sequence[str], call_uuid: str | None = None
) -> list[Heard]:
    """One call: answer, then each PIN while the call still asks for one, then hang up."""
    call_uuid = call_uuid or str(uuidlib.uuid4())
    fields = {"from": caller, "to": CALLED, "uuid": call_uuid, "conversation_uuid": "CON-1"}
    heard = [await line.post("/webhooks/answer", fields)]
    for pin in pins:
        if heard[-1].next_step() != "pin":
            break
        dtmf = {"dtmf": {"digits": pin, "timed_out": False}}
        heard.append(await line.post("/webhooks/input/pin", {**fields, **dtmf}))
    await line.post("/webhooks/event", {**fields, "status": "completed"})
    return heard


async def flood(lines: Sequence[Line], calls: int, pins_per_call: int = 3) -> list[Heard]:
    """`calls` concurrent calls of wrong PINs from rotating (and some withheld) numbers,
    spread over `lines` (one per replica)."""

    async def one(index: int) -> list[Heard]:
        caller = "" if index % 7 == 0 else f"4479{index:08d}"
        return await place_call(lines[index % len(lines)], caller, [WRONG_PIN] * pins_per_call)

    results = await asyncio.gather(*(one(i) for i in range(calls)))
    return [h for call in results for h in call]
