"""The floor for one Python process: a bare aiohttp handler that reads the body and returns
the same answer NCCO totpd returns, with no checks at all, on the same event loop as totpd.

    python -m bench.floor PORT
"""

import asyncio
import json
import sys

from aiohttp import web

from bench.servers import PUBLIC_URL
from totpd import ncco
from totpd.config import CallConfig
from totpd.flow import AskPin, Step, Welcome

NCCO_BODY = json.dumps(ncco.render([Welcome(), AskPin()], Step.PIN, PUBLIC_URL, CallConfig()))


async def answer(request: web.Request) -> web.Response:
    """Any method: read what was sent, answer with the NCCO."""
    await request.read()
    return web.Response(text=NCCO_BODY, content_type="application/json")


async def serve(port: int) -> None:
    """Serve until killed, without an access log (like totpd)."""
    app = web.Application()
    app.router.add_route("*", "/webhooks/answer", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
