"""A slow-connection siege, run as a process of its own: hold as many half-sent requests open
against one address as it can, and open a new one whenever the server closes one.

python -m bench.siege HOST PORT CONNECTIONS DURATION_S

Half the connections send a request's first header lines and never finish them; the other
half send whole headers declaring a 1,000-byte body, without a token, and ten bytes of it.
Prints one JSON line when done: connections opened, how many were held open (sampled every
half second: mean and max), how many the server closed, and connect failures.
"""

import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import time

# The Host header names the target, as a browser would: a proxy routes by it.
HALF_HEADERS = "POST /webhooks/answer HTTP/1.1\r\nHost: {host}\r\nUser-Agent: siege\r\nX-Slow: "
HALF_BODY = (
    "POST /webhooks/input/pin HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    'Content-Length: 1000\r\n\r\n{{"uuid": "'
)
CONNECT_TIMEOUT_S = 5.0
SAMPLE_EVERY_S = 0.5


class Siege:
    """The counters every slot shares."""

    def __init__(self) -> None:
        self.open_now = 0
        self.opened = 0
        self.closed_by_server = 0
        self.connect_errors = 0
        self.samples: list[int] = []


async def hold(siege: Siege, host: str, port: int, sent: bytes, stop_s: float) -> None:
    """One slot: connect, send `sent`, wait for the server to close, again until `stop_s`."""
    loop = asyncio.get_running_loop()
    while loop.time() < stop_s:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            siege.connect_errors += 1
            await asyncio.sleep(0.1)
            continue
        siege.opened += 1
        siege.open_now += 1
        try:
            writer.write(sent)
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(max(0.0, stop_s - loop.time())):
                    await reader.read()  # whatever the answer, until the server closes
                    siege.closed_by_server += 1
        except OSError:
            siege.closed_by_server += 1
        finally:
            siege.open_now -= 1
            writer.close()


async def sample(siege: Siege, stop_s: float) -> None:
    """How many connections are open, every SAMPLE_EVERY_S."""
    loop = asyncio.get_running_loop()
    while loop.time() < stop_s:
        siege.samples.append(siege.open_now)
        await asyncio.sleep(SAMPLE_EVERY_S)


async def main(host: str, port: int, connections: int, duration_s: float) -> dict[str, float]:
    """The siege; its counters."""
    siege = Siege()
    stop_s = asyncio.get_running_loop().time() + duration_s
    kinds = [text.format(host=f"{host}:{port}").encode() for text in (HALF_BODY, HALF_HEADERS)]
    slots = [hold(siege, host, port, kinds[n % 2], stop_s) for n in range(connections)]
    await asyncio.gather(sample(siege, stop_s), *slots)
    held = siege.samples[len(siege.samples) // 4 :] or [0]  # after the ramp-up
    return {
        "opened": siege.opened,
        "held_mean": statistics.mean(held),
        "held_max": max(siege.samples or [0]),
        "closed_by_server": siege.closed_by_server,
        "connect_errors": siege.connect_errors,
    }


if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # An attacker's CPU is not the daemon's: on this shared machine, the siege yields.
    os.nice(19)
    started_s = time.monotonic()
    result = asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
    result["elapsed_s"] = time.monotonic() - started_s
    print(json.dumps(result))
