"""One signed answer webhook, timed from connect() to the whole answer, printed as JSON.

Run in the guest with totpd's installed virtualenv (it signs with totpd's own
`vonage.sign_webhook`, as the emulator does); everything is imported before the stopwatch
starts, so only the daemon's side is timed. The signature secret comes from $SECRET.

    python signed_answer.py URL CALLER APPLICATION_ID
"""

import http.client
import json
import os
import sys
import time
import urllib.parse
import uuid

from totpd import vonage


def main(url: str, caller: str, application_id: str) -> None:
    """Send the answer webhook of a new call and print its status, timing and NCCO."""
    parts = urllib.parse.urlsplit(url)
    body = json.dumps(
        {
            "from": caller,
            "to": "447700900999",
            "uuid": str(uuid.uuid4()),
            "conversation_uuid": f"CON-{uuid.uuid4()}",
        }
    ).encode()
    token = vonage.sign_webhook(body, os.environ["SECRET"].encode(), time.time(), application_id)
    headers = {"Authorization": token, "Content-Type": "application/json"}
    started = time.monotonic()
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
    connection.request("POST", "/webhooks/answer", body, headers)
    response = connection.getresponse()
    answer = response.read()
    elapsed_s = time.monotonic() - started
    print(
        json.dumps(
            {
                "status": response.status,
                "connection_to_answer_s": round(elapsed_s, 3),
                "ncco": answer.decode(errors="replace"),
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
