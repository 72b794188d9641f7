"""The optional speed-ups, `totpd[speedups]`: orjson for the webhooks' JSON and uvloop's event
loop, when they are installed. Without them (as on 32-bit ARM, where PyPI has no wheels for
either) totpd behaves the same on the standard library's json and asyncio's own loop.
"""

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

try:
    import orjson

    HAVE_ORJSON = True
except ModuleNotFoundError:
    HAVE_ORJSON = False
try:
    import uvloop

    HAVE_UVLOOP = True
except ModuleNotFoundError:
    HAVE_UVLOOP = False


def dumps(document: Any) -> bytes:
    """`document` as compact UTF-8 JSON."""
    if HAVE_ORJSON:
        return orjson.dumps(document)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes | str) -> Any:
    """Parsed JSON; anything malformed is a ValueError, as with orjson (deep nesting and the
    NaN/Infinity that json alone would take included)."""
    if HAVE_ORJSON:
        return orjson.loads(data)
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` to completion on uvloop's event loop when installed, else on asyncio's."""
    if HAVE_UVLOOP:
        uvloop.run(main)
    else:
        asyncio.run(main)
