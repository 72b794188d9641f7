"""The answers to requests that arrive together are written together.

Over HTTP the order of the writes cannot be seen, so the listener's handler is called here
directly, with request objects from aiohttp's own test helper, as its server would call it:
one task per request, all started in the same turn of the event loop.
"""

import asyncio
import time

from aiohttp.test_utils import make_mocked_request

from tests.helpers import APPLICATION_ID, CALLER, SIGNATURE_SECRET
from totpd import vonage
from totpd.services import Services
from totpd.web import Webhooks


def signed_answer(uuid: str) -> tuple[str, dict[str, str]]:
    """A GET answer webhook for a new call: its path with the query, and its headers."""
    query = [("to", "447700900999"), ("from", CALLER), ("uuid", uuid)]
    payload = vonage.get_payload(query)
    header = vonage.sign_webhook(payload, SIGNATURE_SECRET.encode(), time.time(), APPLICATION_ID)
    path = "/webhooks/answer?" + "&".join(f"{k}={v}" for k, v in query)
    return path, {"Authorization": header}


async def test_every_answer_of_a_batch_waits_for_the_whole_batch(services: Services) -> None:
    webhooks = Webhooks(services)
    handled = services.metrics.registry.get_sample_value
    # How many answers had been handled (timed) when each one was handed back to be written.
    handled_when_written: list[float | None] = []

    async def serve(uuid: str) -> int:
        path, headers = signed_answer(uuid)
        response = await webhooks(make_mocked_request("GET", path, headers=headers))
        handled_when_written.append(handled("totpd_webhook_seconds_count", {"route": "answer"}))
        return response.status

    statuses = await asyncio.gather(*(serve(f"call-{n}") for n in range(3)))
    assert statuses == [200, 200, 200]
    assert handled_when_written == [3, 3, 3]
    assert await services.calls.count() == 3
