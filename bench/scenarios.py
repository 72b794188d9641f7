"""Four of the measurements: answer throughput side by side, Argon2 isolation, a forged-request
flood with a genuine call in it, and memory (slow connections: bench/slow.py). Each starts its
own totpd daemon."""

import asyncio
import math
import statistics
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import aiohttp

from bench import load, servers, traffic
from bench.load import Run
from bench.servers import PIN, SIGNER, Server
from totpd import vonage
from totpd.emulator import Emulator, Line, scripted_keypad

WARMUP_S = 2.0
WARMUP_REQUESTS = 60_000
TOKEN_HEADROOM = 1.6  # signed requests generated per request expected, so none is replayed


@dataclass(frozen=True)
class Settings:
    """How long and how hard to push."""

    workdir: Path
    duration_s: float = 10.0
    rounds: int = 3
    connections: int = 32
    baseline_url: str = ""  # the Express sample's answer URL (or any baseline's)


# Throughput ---------------------------------------------------------------------------------
@dataclass
class Throughput:
    """Every measured run of each target, over interleaved rounds."""

    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, target: str, pick: Callable[[Run], float]) -> float:
        """The median of one figure over a target's rounds."""
        return statistics.median(pick(r) for r in self.runs[target])


def _signed_file(path: Path, count: int) -> Path:
    traffic.write(path, traffic.signed_answers(SIGNER, count))
    return path


def _measure_totpd(settings: Settings, round_no: int) -> Run:
    """One round against a fresh daemon: warm up, then a run with fresh, unique tokens."""
    home = settings.workdir / f"throughput-{round_no}"
    daemon = servers.start_totpd(servers.totpd_home(home))
    try:
        warmup = _signed_file(home / "warmup.req", WARMUP_REQUESTS)
        warm = load.run(daemon, daemon.base_url, warmup, WARMUP_S, settings.connections)
        # Sign only now (tokens are fresh for 60 s) and enough that none is sent twice.
        count = int(warm.rate * settings.duration_s * TOKEN_HEADROOM) + 1000
        measured = _signed_file(home / "measured.req", count)
        run = load.run(daemon, daemon.base_url, measured, settings.duration_s, settings.connections)
        if servers.clock_refusals(home / "totpd.toml"):
            raise RuntimeError("pre-signed requests got the clock goodbye: widen the clock limit")
        return run
    finally:
        daemon.stop()


def _measure_floor(settings: Settings, floor: Server) -> Run:
    requests_file = settings.workdir / "floor.req"
    if not requests_file.exists():
        _signed_file(requests_file, 20_000)  # the same kind of body; the floor checks nothing
    load.run(floor, floor.base_url, requests_file, WARMUP_S, settings.connections)
    return load.run(floor, floor.base_url, requests_file, settings.duration_s, settings.connections)


def _measure_baseline(settings: Settings, baseline: Server) -> Run:
    url = settings.baseline_url
    load.run(baseline, url, None, WARMUP_S, settings.connections)
    return load.run(baseline, url, None, settings.duration_s, settings.connections)


def throughput(
    settings: Settings, baseline: Server, floor: Server, progress: Callable[[str], None]
) -> Throughput:
    """Interleaved rounds, the order rotating each round, so a busy moment on the machine does
    not land on one target only; the report gives each target's median round."""
    measures: list[tuple[str, Callable[[int], Run]]] = [
        ("totpd", lambda round_no: _measure_totpd(settings, round_no)),
        ("floor", lambda _: _measure_floor(settings, floor)),
        ("baseline", lambda _: _measure_baseline(settings, baseline)),
    ]
    result = Throughput({name: [] for name, _ in measures})
    for round_no in range(settings.rounds):
        shift = round_no % len(measures)
        for name, measure in measures[shift:] + measures[:shift]:
            run = measure(round_no)
            result.runs[name].append(run)
            progress(
                f"round {round_no + 1}/{settings.rounds} {name}: {run.rate:,.0f} req/s,"
                f" p99 {run.p99_ms:.1f} ms, non-2xx {run.non_2xx}"
            )
    return result


# Genuine calls, timed per webhook ------------------------------------------------------------
@dataclass(frozen=True)
class CallTiming:
    """One emulated call: whether it completed as a caller expects, and each webhook's time."""

    completed: bool
    heard_code: bool
    webhooks_ms: list[tuple[str, float]]


def _timer(timings: list[tuple[str, float]]) -> aiohttp.TraceConfig:
    """Records connect + send + read time of every request, by URL path."""

    async def started(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        context.started_s = time.perf_counter()

    async def ended(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        timings.append((params.url.path, (time.perf_counter() - context.started_s) * 1000))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(started)
    trace.on_request_end.append(ended)
    return trace


async def genuine_call(daemon: Server, presses: list[str]) -> CallTiming:
    """One whole call through totpd's own emulator, a new TCP connection per webhook (as a
    Vonage webhook is), signed as Vonage signs."""
    timings: list[tuple[str, float]] = []
    heard: list[str] = []
    line = Line(daemon.base_url, SIGNER.secret, SIGNER.application_id, traffic.CALLER)
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, trace_configs=[_timer(timings)]
    ) as session:
        completed = await Emulator(
            line, session, scripted_keypad(presses, heard.append), heard.append
        ).run()
    return CallTiming(completed, any("code is" in said for said in heard), timings)


# Argon2 isolation ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Isolation:
    """The answer webhook's latency alone, and while callers' PINs go through Argon2."""

    quiet: Run
    busy: Run
    callers: int
    pin_checks: int
    pin_step_ms: list[float]
    all_heard_code: bool


# The lockout counts an attempt before its PIN is checked, so with the default limits no more
# than 3 attempts from one number (10 in all) are in flight at once and the rest are refused
# without Argon2. Raised here so that every caller's PIN does go through Argon2.
GENEROUS_LOCKOUT = """
[lockout]
per_caller = "100000 per minute"
per_user = "100000 per minute"
global = "100000 per minute"
"""
PACED_CONNECTIONS = 10
PACED_DELAY_MS = 10  # each connection waits 10 ms between requests: about 1,000 answers/s


def _paced_answers(daemon: Server, path: Path, duration_s: float) -> Run:
    count = int(PACED_CONNECTIONS * 1000 / PACED_DELAY_MS * duration_s * TOKEN_HEADROOM)
    _signed_file(path, count)
    return load.run(
        daemon, daemon.base_url, path, duration_s, PACED_CONNECTIONS, delay_ms=PACED_DELAY_MS
    )


def argon2_isolation(
    settings: Settings, progress: Callable[[str], None], callers: int = 20
) -> Isolation:
    """About 1,000 signed answers/s, first alone, then while `callers` callers at a time enter
    their PIN (real Argon2id at the default cost), wave after wave."""
    home = settings.workdir / "argon2"
    daemon = servers.start_totpd(servers.totpd_home(home, extra=GENEROUS_LOCKOUT))
    try:
        quiet = _paced_answers(daemon, home / "quiet.req", settings.duration_s)
        progress(f"argon2: answers alone p99 {quiet.p99_ms:.1f} ms")

        async def waves() -> tuple[list[CallTiming], Run]:
            stop_s = time.monotonic() + settings.duration_s - 1
            answers = asyncio.create_task(
                asyncio.to_thread(_paced_answers, daemon, home / "busy.req", settings.duration_s)
            )
            await asyncio.sleep(1.0)
            calls: list[CallTiming] = []
            while time.monotonic() < stop_s:
                wave = [genuine_call(daemon, [PIN]) for _ in range(callers)]
                calls += await asyncio.gather(*wave)
            return calls, await answers

        calls, busy = asyncio.run(waves())
    finally:
        daemon.stop()
    pin_ms = [ms for call in calls for path, ms in call.webhooks_ms if path.endswith("/pin")]
    progress(
        f"argon2: answers p99 {busy.p99_ms:.1f} ms during {len(pin_ms)} PIN checks,"
        f" PIN step max {max(pin_ms, default=0):.0f} ms"
    )
    return Isolation(
        quiet, busy, callers, len(pin_ms), pin_ms, all(c.heard_code for c in calls) and bool(calls)
    )


# Forged-request flood ------------------------------------------------------------------------
@dataclass(frozen=True)
class Flood:
    """The flood as sent and answered, and the genuine calls made during it."""

    run: Run
    target_rate: int
    calls: list[CallTiming]
    alone: Run  # the flood without genuine calls: what a refusal costs
    rss_before_kib: int
    rss_after_kib: int


FLOOD_DELAY_MS = 10  # each connection sends, waits this long (wrk counts whole ms), sends again


def flood(settings: Settings, progress: Callable[[str], None], target_rate: int = 5000) -> Flood:
    """`target_rate` forged or unsigned requests per second at every webhook: first alone (what
    a refusal costs), then with three genuine calls (PIN, a fresh code, hang up) in the middle."""
    home = settings.workdir / "flood"
    daemon = servers.start_totpd(servers.totpd_home(home))
    forged = home / "forged.req"
    traffic.write(forged, traffic.forged(SIGNER, 40_000))
    # A connection's cycle is the delay plus the refusal's round trip and wrk's timer: about
    # 1 ms on a quick machine, 2 on a slower one. Enough connections for 20% over the target
    # at 1 ms, so the flood is not lighter than the target where a cycle takes 2 ms.
    connections = math.ceil(target_rate * 1.2 * (FLOOD_DELAY_MS + 1) / 1000)

    def send(duration_s: float) -> Run:
        return load.run(
            daemon, daemon.base_url, forged, duration_s, connections, FLOOD_DELAY_MS, True
        )

    async def with_calls() -> tuple[Run, list[CallTiming]]:
        sent = asyncio.create_task(asyncio.to_thread(send, settings.duration_s))
        await asyncio.sleep(min(3.0, settings.duration_s / 4))
        calls = [await genuine_call(daemon, [PIN, "1"]) for _ in range(3)]
        return await sent, calls

    try:
        rss_before_kib = daemon.rss_kib()
        alone = send(max(2.0, settings.duration_s / 2))
        run, calls = asyncio.run(with_calls())
        rss_after_kib = daemon.rss_kib()
    finally:
        daemon.stop()
    worst = max((ms for c in calls for _, ms in c.webhooks_ms), default=0.0)
    progress(
        f"flood: {run.rate:,.0f} forged req/s, statuses {run.statuses},"
        f" genuine calls' slowest webhook {worst:.0f} ms"
    )
    return Flood(run, target_rate, calls, alone, rss_before_kib, rss_after_kib)


# Memory --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Memory:
    """Resident memory idle and after each batch of whole calls, and calls left in memory."""

    idle_kib: int
    after_kib: list[int]
    calls_per_batch: int
    calls_active: list[float]
    replay_window_s: int


async def _calls(daemon: Server, count: int, concurrency: int = 8) -> None:
    """`count` calls: a signed answer, then a signed `completed` event, each."""
    queue = iter(range(count))

    async def post(session: aiohttp.ClientSession, path: str, body: bytes) -> None:
        headers = {
            "Authorization": vonage.sign_webhook(
                body, SIGNER.secret, time.time(), SIGNER.application_id
            ),
            "Content-Type": "application/json",
        }
        async with session.post(daemon.base_url + path, data=body, headers=headers) as response:
            if response.status not in (200, 204):
                raise RuntimeError(f"{path}: HTTP {response.status}")
            await response.read()

    async def caller(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            call_uuid = str(uuidlib.uuid4())
            await post(session, "/webhooks/answer", traffic.answer_body(call_uuid))
            await post(session, "/webhooks/event", traffic.event_body(call_uuid, "completed"))

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(caller(session) for _ in range(concurrency)))


async def _calls_active(url: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        for line in (await response.text()).splitlines():
            if line.startswith("totpd_calls_active "):
                return float(line.split()[1])
    raise RuntimeError("no totpd_calls_active in /metrics")


def memory(
    settings: Settings, progress: Callable[[str], None], calls_per_batch: int = 10_000
) -> Memory:
    """RSS idle, then after 10,000 whole calls, then after 10,000 more once the replay window
    of the first batch has passed (so the replay cache must have been swept, not grown).

    This daemon accepts tokens for 5 s (+1 s skew) instead of 60 (+15), so that window passes
    within the run; the cache is swept every 30 s either way.
    """
    home = settings.workdir / "memory"
    config_path = servers.totpd_home(home, vonage_extra="max_age_s = 5\nclock_skew_s = 1")
    daemon = servers.start_totpd(config_path)
    metrics = servers.metrics_url(config_path)
    try:
        time.sleep(2.0)
        idle_kib = daemon.rss_kib()
        progress(f"memory: idle {idle_kib / 1024:.1f} MiB")
        after: list[int] = []
        active: list[float] = []
        for batch in range(2):
            started_s = time.monotonic()
            asyncio.run(_calls(daemon, calls_per_batch))
            after.append(daemon.rss_kib())
            active.append(asyncio.run(_calls_active(metrics)))
            progress(
                f"memory: after {calls_per_batch * (batch + 1):,} calls"
                f" {after[-1] / 1024:.1f} MiB, calls in memory {active[-1]:.0f}"
            )
            if batch == 0:  # past the 7 s window and the 30 s sweep interval
                time.sleep(max(0.0, 31.0 - (time.monotonic() - started_s)))
    finally:
        daemon.stop()
    return Memory(idle_kib, after, calls_per_batch, active, 5 + 2 * 1)
