"""`totpd call`: a stand-in for Vonage that walks one whole call against a running totpd.

It signs every request exactly as Vonage does (HS256 JWT, `payload_hash` of the raw body),
follows each NCCO, prints what the caller would hear, and types the keypad digits it is given.
"""

import asyncio
import getpass
import json
import re
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from totpd import vonage

CALLED_NUMBER = "447700900999"
SPEECH_PREFIX = "say:"


@dataclass(frozen=True)
class Line:
    """Where the call goes and who it comes from."""

    base_url: str
    secret: bytes
    application_id: str
    caller: str
    answer_method: str = "POST"


def plain_text(ssml: str) -> str:
    """What a listener hears of an SSML text, as readable plain text."""
    text = re.sub(r'<say-as interpret-as="digits">(\d+)</say-as>', lambda m: " ".join(m[1]), ssml)
    text = re.sub(r"<break[^>]*/>", " ", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    return re.sub(r"\s+", " ", text).strip()


class Emulator:
    """One call's worth of Vonage behaviour."""

    def __init__(
        self,
        line: Line,
        session: aiohttp.ClientSession,
        keypad: Callable[[str], str | None],
        say: Callable[[str], None],
    ) -> None:
        self.line = line
        self.session = session
        self.keypad = keypad
        self.say = say
        self.uuid = str(uuidlib.uuid4())
        self.conversation_uuid = f"CON-{uuidlib.uuid4()}"

    def _base_fields(self) -> dict[str, str]:
        return {
            "from": self.line.caller,
            "to": CALLED_NUMBER,
            "uuid": self.uuid,
            "conversation_uuid": self.conversation_uuid,
        }

    def _local(self, url: str) -> str:
        """An NCCO eventUrl (built from public_url) aimed at the daemon we are testing."""
        parts = urlsplit(url)
        return self.line.base_url.rstrip("/") + parts.path

    def _sign(self, payload: bytes) -> dict[str, str]:
        token = vonage.sign_webhook(
            payload, self.line.secret, datetime.now(UTC).timestamp(), self.line.application_id
        )
        return {"Authorization": token}

    async def _post(self, url: str, fields: dict[str, Any]) -> tuple[int, Any]:
        body = json.dumps(fields).encode()
        headers = {**self._sign(body), "Content-Type": "application/json"}
        async with self.session.post(url, data=body, headers=headers) as response:
            return response.status, await _json_or_none(response)

    async def answer(self) -> tuple[int, Any]:
        """Vonage's first request: the answer webhook."""
        fields = {**self._base_fields(), "region_url": "https://api-eu-1.vonage.com"}
        url = f"{self.line.base_url}/webhooks/answer"
        if self.line.answer_method == "POST":
            return await self._post(url, fields)
        payload = vonage.get_payload(fields.items())
        async with self.session.get(
            f"{url}?{urlencode(fields)}", headers=self._sign(payload)
        ) as response:
            return response.status, await _json_or_none(response)

    async def run(self) -> bool:
        """Walk the call to its end; True when every webhook was answered with an NCCO."""
        self.say(f"[call {self.uuid} from {self.line.caller or 'a withheld number'}]")
        status, ncco = await self.answer()
        if status != 200 or not isinstance(ncco, list):
            self.say(f"[answer webhook failed: HTTP {status} {ncco}; Vonage ends the call]")
            return False
        ok = True
        pending = list(ncco)
        while pending:
            action = pending.pop(0)
            if action.get("action") == "talk":
                self.say(f"totpd: {plain_text(action['text'])}")
            elif action.get("action") == "input":
                url = action["eventUrl"][0]
                step = urlsplit(url).path.rsplit("/", 1)[-1]
                pressed = self.keypad(step)
                if pressed is None:
                    self.say("[caller hangs up]")
                    break
                status, next_ncco = await self._post(self._local(url), self._input(pressed))
                if status == 200 and isinstance(next_ncco, list):
                    pending = next_ncco  # the new NCCO replaces the rest of the old one
                    continue
                ok = False
                self.say(f"[input webhook failed: HTTP {status}; the NCCO goes on]")
        status, _ = await self._post(
            f"{self.line.base_url}/webhooks/event", {**self._base_fields(), "status": "completed"}
        )
        self.say("[call completed]")
        return ok and status in (200, 204)

    def _input(self, pressed: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            **self._base_fields(),
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        if pressed.startswith(SPEECH_PREFIX):
            text = pressed.removeprefix(SPEECH_PREFIX)
            fields["dtmf"] = {"digits": "", "timed_out": True}
            fields["speech"] = {"results": [{"text": text, "confidence": "0.9"}]}
        else:
            digits = pressed.rstrip("#")
            fields["dtmf"] = {"digits": digits, "timed_out": digits == ""}
        return fields


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return None


def scripted_keypad(presses: list[str], say: Callable[[str], None]) -> Callable[[str], str | None]:
    """A keypad that types `presses` in order, then hangs up. PIN digits are masked."""
    queue = iter(presses)

    def keypad(step: str) -> str | None:
        pressed = next(queue, None)
        if pressed is not None:
            shown = "*" * len(pressed.rstrip("#")) if step == "pin" else pressed or "(silence)"
            say(f"caller: {shown}")
        return pressed

    return keypad


def terminal_keypad(say: Callable[[str], None]) -> Callable[[str], str | None]:
    """A keypad read from the terminal; the PIN is not echoed. An empty line is silence."""

    def keypad(step: str) -> str | None:
        ask = getpass.getpass if step == "pin" else input
        try:
            return ask(f"keypad ({step}, Enter sends, empty line is silence)> ")
        except EOFError:
            return None

    return keypad


def place_call(line: Line, keypad: Callable[[str], str | None], say: Callable[[str], None]) -> bool:
    """Run one emulated call to its end."""

    async def call() -> bool:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            return await Emulator(line, session, keypad, say).run()

    return asyncio.run(call())
