"""The floor for one Python process: a bare handler that reads the body and returns the same
answer NCCO totpd returns, with no checks at all, on totpd's own stack (aiohttp's low-level
server on uvloop).

    python -m bench.floor PORT
"""

import asyncio
import sys

import orjson
import uvloop
from aiohttp import web

from bench.servers import PUBLIC_URL
from totpd import catalogues, ncco
from totpd.config import CallConfig
from totpd.flow import AskPin, Step, Welcome

CALL = CallConfig()
NCCO_BODY = orjson.dumps(
    ncco.render([Welcome(), AskPin()], Step.PIN, PUBLIC_URL, CALL, catalogues.find(CALL.language))
)


async def answer(request: web.BaseRequest) -> web.Response:
    """Any method, any path: read what was sent, answer with the NCCO."""
    await request.read()
    await asyncio.sleep(0)  # as totpd's listener does: the answers of a batch leave together
    return web.Response(body=NCCO_BODY, content_type="application/json")


async def serve(port: int) -> None:
    """Serve until killed, without an access log (like totpd)."""
    runner = web.ServerRunner(web.Server(answer, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
