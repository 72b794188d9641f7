"""The benchmark report: the machine, each measurement as a Markdown table, and the targets.

docs/performance.md holds the report of the last whole run between two markers; `splice` puts a
new one there and leaves the hand-written notes around it as they are.
"""

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench import servers, slow
from bench.load import Run
from bench.scenarios import Flood, Isolation, Memory, Throughput
from bench.slow import Siege
from totpd.config import PinConfig


@dataclass(frozen=True)
class Verdict:
    """One target and whether this run met it."""

    target: str
    met: bool
    measured: str


def _first_line(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    done = subprocess.run(  # noqa: S603 - fixed argv
        argv, capture_output=True, text=True, timeout=30, check=False
    )
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def machine() -> str:
    """One paragraph describing where the numbers come from."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    distro = "Linux"
    os_release = Path("/etc/os-release")
    if os_release.exists():
        for line in os_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip('"')
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {mem_kib / 1024 / 1024:.1f} GiB RAM;"
        f" {distro}, Linux {platform.release()}; Python {platform.python_version()},"
        f" aiohttp {metadata.version('aiohttp')} (low-level server) on uvloop"
        f" {metadata.version('uvloop')};"
        f" Node.js {_first_line(['node', '--version'])};"
        f" {_first_line(['wrk', '--version']).split(' Copyright')[0]}."
        " Load generator and servers share the machine, on 127.0.0.1."
    )


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def throughput_section(result: Throughput, duration_s: float, connections: int) -> list[str]:
    """The side-by-side table and its verdicts."""
    rows = [
        ("baseline", "Express sample (the blog post's server)", "GET, unsigned, no checks"),
        ("floor", "bare handler on totpd's stack, same NCCO", "POST, no checks"),
        ("totpd", "totpd daemon (`totpd serve`)", "POST, signed, every check"),
    ]
    base_rate = result.median("baseline", lambda r: r.rate)
    rounds = len(result.runs["totpd"])
    lines = [
        "## Answer webhook: throughput and latency",
        "",
        f"wrk, 1 thread, {connections} keep-alive connections, {duration_s:g} s per run after a"
        f" 2 s warm-up; {rounds} rounds, the order of the three rotating each round; the"
        " median round is shown. totpd checks the HS256 signature, `iat`, `payload_hash`,"
        " `application_id` and the `jti` replay cache on every request, each a different call"
        " (a distinct call uuid and `jti`, pre-signed), and creates that call's state.",
        "",
        "| Server | Request | req/s | p50 ms | p99 ms | CPU µs/req | req/s vs Express |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, name, request in rows:
        cpu = [r.cpu_us_per_request for r in result.runs[key]]
        cpu_text = "n/a" if None in cpu else f"{result.median(key, _cpu_us):.0f}"
        rate = result.median(key, lambda r: r.rate)
        lines.append(
            f"| {name} | {request} | {rate:,.0f} | {_ms(result.median(key, lambda r: r.p50_ms))}"
            f" | {_ms(result.median(key, lambda r: r.p99_ms))} | {cpu_text}"
            f" | {rate / base_rate:.2f}x |"
        )
    floor_rate = result.median("floor", lambda r: r.rate)
    totpd_rate = result.median("totpd", lambda r: r.rate)
    lines += [
        "",
        f"totpd does {totpd_rate / floor_rate:.0%} of what a bare handler on its own stack"
        " (aiohttp's low-level server on uvloop, one process) does.",
        "Every round: "
        + "; ".join(
            f"{key} "
            + ", ".join(f"{r.rate:,.0f}/s p99 {_ms(r.p99_ms)} ms" for r in result.runs[key])
            for key, _, _ in rows
        )
        + ".",
        "",
    ]
    return lines


def _cpu_us(run: Run) -> float:
    return run.cpu_us_per_request or 0.0


def throughput_verdicts(result: Throughput) -> list[Verdict]:
    """totpd signed against Express unsigned: 1.2x the requests, a lower p99."""
    base_rate = result.median("baseline", lambda r: r.rate)
    totpd_rate = result.median("totpd", lambda r: r.rate)
    base_p99 = result.median("baseline", lambda r: r.p99_ms)
    totpd_p99 = result.median("totpd", lambda r: r.p99_ms)
    clean = all(r.non_2xx == 0 and r.socket_errors == 0 for r in result.runs["totpd"])
    return [
        Verdict(
            "signed answer >= 1.2x the Express sample's unsigned req/s",
            totpd_rate >= 1.2 * base_rate and clean,
            f"{totpd_rate / base_rate:.2f}x" + ("" if clean else " (some requests failed)"),
        ),
        Verdict(
            "signed answer p99 below the Express sample's",
            totpd_p99 < base_p99,
            f"{_ms(totpd_p99)} ms vs {_ms(base_p99)} ms",
        ),
    ]


def isolation_section(result: Isolation) -> list[str]:
    """Answer latency with and without Argon2 work in the background."""
    pins = PinConfig()
    pin_ms = sorted(result.pin_step_ms)
    median_pin = pin_ms[len(pin_ms) // 2] if pin_ms else 0.0
    return [
        "## Argon2 isolation",
        "",
        f"Signed answers paced at about 1,000/s (10 connections), alone, then while"
        f" {result.callers} callers at a time enter their PIN, wave after wave"
        f" ({result.pin_checks} PIN checks, real Argon2id at the default cost: time cost"
        f" {pins.argon2_time_cost}, {pins.argon2_memory_kib // 1024} MiB, parallelism"
        f" {pins.argon2_parallelism}, at most {pins.max_concurrent_checks} at once, off the"
        " event loop).",
        "",
        "| Answer webhook | req/s | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
        f"| alone | {result.quiet.rate:,.0f} | {_ms(result.quiet.p50_ms)}"
        f" | {_ms(result.quiet.p99_ms)} | {_ms(result.quiet.max_ms)} |",
        f"| while {result.callers} callers enter PINs | {result.busy.rate:,.0f}"
        f" | {_ms(result.busy.p50_ms)} | {_ms(result.busy.p99_ms)} | {_ms(result.busy.max_ms)} |",
        "",
        f"The PIN step itself (queueing for Argon2 included): median {median_pin:.0f} ms,"
        f" slowest {max(pin_ms, default=0):.0f} ms; every caller heard a code:"
        f" {'yes' if result.all_heard_code else 'NO'}.",
        "",
    ]


def isolation_verdicts(result: Isolation) -> list[Verdict]:
    """Answer p99 under 20 ms while Argon2 runs."""
    clean = result.busy.non_2xx == 0 and result.busy.socket_errors == 0
    return [
        Verdict(
            f"answer p99 < 20 ms while {result.callers} callers enter PINs",
            result.busy.p99_ms < 20 and clean and result.all_heard_code,
            f"{_ms(result.busy.p99_ms)} ms",
        )
    ]


WEBHOOK_NAMES = {
    "/webhooks/answer": "answer",
    "/webhooks/input/pin": "input (PIN, Argon2)",
    "/webhooks/input/next": "input (fresh code)",
    "/webhooks/event": "event (completed)",
}


def flood_section(result: Flood) -> list[str]:
    """What the flood did, and each webhook of the genuine calls made during it."""
    run = result.run
    statuses = ", ".join(f"{n:,} x {code}" for code, n in sorted(run.statuses.items()))
    lines = [
        "## Forged-request flood",
        "",
        f"wrk paced to at least {result.target_rate:,} requests/s for {run.duration_s:.0f} s,"
        " every webhook, cycling through unsigned requests, garbage tokens, `alg: none`, a"
        " guessed secret, captured tokens an hour old or ahead sent with another body, a"
        " tampered body and another application's"
        f" token: {run.rate:,.0f} requests/s achieved, answered {statuses}"
        f" (p99 {_ms(run.p99_ms)} ms), {run.socket_errors} socket errors. Alone, before the"
        f" calls, the same flood ({result.alone.rate:,.0f}/s, {result.alone.requests:,}"
        f" requests) cost {result.alone.cpu_us_per_request or 0:.0f} µs of CPU per refusal."
        f" The daemon's RSS went from {result.rss_before_kib / 1024:.1f} MiB before both"
        f" floods to {result.rss_after_kib / 1024:.1f} MiB after.",
        "",
        "Meanwhile three genuine calls, through totpd's own emulator, each webhook on a new"
        " connection (connect + request + response, as Vonage's 1 s connect and read timeouts"
        " count it): the PIN, a fresh code, hang up.",
        "",
        "| Webhook | call 1 ms | call 2 ms | call 3 ms |",
        "|---|---:|---:|---:|",
    ]
    for path, name in WEBHOOK_NAMES.items():
        cells = []
        for call in result.calls:
            times = [ms for p, ms in call.webhooks_ms if p == path]
            cells.append(" + ".join(f"{ms:.0f}" for ms in times) or "-")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    completed = all(c.completed and c.heard_code for c in result.calls)
    lines += [
        "",
        f"All three calls completed and heard a code: {'yes' if completed else 'NO'}.",
        "",
    ]
    return lines


def flood_verdicts(result: Flood) -> list[Verdict]:
    """The flood's rate, every response a 401, every genuine webhook under 1 s."""
    run = result.run
    refused = run.statuses.get(401, 0)
    worst = max((ms for c in result.calls for _, ms in c.webhooks_ms), default=float("inf"))
    completed = all(c.completed and c.heard_code for c in result.calls) and bool(result.calls)
    return [
        Verdict(
            f"{result.target_rate:,} forged req/s refused, all 401",
            run.rate >= result.target_rate
            and refused == run.requests
            and result.alone.statuses.get(401, 0) == result.alone.requests,
            f"{run.rate:,.0f}/s, {refused / max(run.requests, 1):.2%} 401",
        ),
        Verdict(
            "genuine calls complete during the flood, each webhook < 1 s",
            completed and worst < 1000,
            f"slowest webhook {worst:.0f} ms",
        ),
    ]


def _reasons(counts: dict[str, float]) -> str:
    return ", ".join(f"{n:,.0f} {reason}" for reason, n in sorted(counts.items())) or "none"


def slow_section(sieges: list[Siege]) -> list[str]:
    """What each siege held open, what it cost the daemon, and the genuine calls' webhooks."""
    if not sieges:
        return []
    first = sieges[0]
    lines = [
        "## Slow connections",
        "",
        f"A separate process (at nice 19: an attacker's CPU is not the daemon's) holds"
        f" {first.connections:,} connections open for"
        f" {first.duration_s:.0f} s, opening a new one whenever one is closed: half send the"
        " first header lines of a request and never finish them, half send whole headers"
        " without a token, declare a 1,000-byte body and send ten bytes of it. The daemon runs"
        f" with the unit's `LimitNOFILE={servers.UNIT_MAX_FILES}` and the default limits"
        " (headers 5 s, body 5 s, 1,024 connections). After a"
        f" {slow.RAMP_UP_S:.0f} s ramp-up, three genuine calls (the PIN, a fresh code, hang"
        " up), each webhook on a new connection. Through Caddy, the siege and the calls go to"
        " Caddy with the shipped Caddyfile: it holds the half-sent headers itself and passes"
        " the half-sent bodies on, which totpd refuses from their headers.",
        "",
        "| | " + " | ".join(s.path for s in sieges) + " |",
        "|---|" + "---:|" * len(sieges),
    ]
    rows: list[tuple[str, list[str]]] = [
        (
            "slow connections held (mean after ramp-up)",
            [f"{s.attacker['held_mean']:,.0f}" for s in sieges],
        ),
        ("slow connections opened in all", [f"{s.attacker['opened']:,.0f}" for s in sieges]),
        ("daemon's connections, peak", [f"{s.daemon_connections_max:,}" for s in sieges]),
        ("daemon's open files, peak", [f"{s.daemon_files_max:,}" for s in sieges]),
        (
            "refused by the daemon",
            [
                ", ".join(f"{n:,.0f} {r}" for r, n in sorted(s.refused.items())) or "none"
                for s in sieges
            ],
        ),
    ]
    for path, name in WEBHOOK_NAMES.items():
        cells = []
        for siege in sieges:
            times = [ms for c in siege.calls for p, ms in c.webhooks_ms if p == path]
            cells.append(" / ".join(f"{ms:.0f}" for ms in times) or "-")
        rows.append((f"genuine {name}, ms (calls 1 / 2 / 3)", cells))
    heard = ["yes" if all(c.completed and c.heard_code for c in s.calls) else "NO" for s in sieges]
    rows.append(("every genuine call heard a code", heard))
    lines += [f"| {label} | {' | '.join(cells)} |" for label, cells in rows]
    return [*lines, ""]


def slow_verdicts(sieges: list[Siege]) -> list[Verdict]:
    """Every genuine call completes under each siege, each webhook in under 1 s, and the
    daemon never comes near its descriptor limit."""
    verdicts = []
    for siege in sieges:
        worst = max((ms for c in siege.calls for _, ms in c.webhooks_ms), default=float("inf"))
        completed = all(c.completed and c.heard_code for c in siege.calls) and bool(siege.calls)
        verdicts.append(
            Verdict(
                f"genuine calls complete while {siege.connections:,} slow connections are"
                f" held ({siege.path}), each webhook < 1 s",
                completed and worst < 1000,
                f"slowest webhook {worst:.0f} ms, {siege.daemon_files_max:,} files open at"
                f" most (limit {servers.UNIT_MAX_FILES:,})",
            )
        )
    return verdicts


def memory_section(result: Memory) -> list[str]:
    """RSS idle and after whole calls."""
    lines = [
        "## Memory",
        "",
        "Resident set size of `totpd serve` (one process, embedded storage), idle after start,"
        f" then after batches of {result.calls_per_batch:,} whole calls (a signed answer and a"
        " signed `completed` event each). The second batch starts after the first batch's"
        f" tokens left the replay window ({result.replay_window_s} s in this run) and a sweep"
        " ran, so the replay cache and the call store must have shrunk back, not grown.",
        "",
        "| | RSS MiB | calls in memory |",
        "|---|---:|---:|",
        f"| idle | {result.idle_kib / 1024:.1f} | 0 |",
    ]
    for n, (kib, active) in enumerate(zip(result.after_kib, result.calls_active, strict=True)):
        lines.append(
            f"| after {result.calls_per_batch * (n + 1):,} calls | {kib / 1024:.1f}"
            f" | {active:.0f} |"
        )
    return [*lines, ""]


def memory_verdicts(result: Memory) -> list[Verdict]:
    """Idle under 60 MiB; no growth from the second batch."""
    growth_kib = result.after_kib[-1] - result.after_kib[0]
    return [
        Verdict(
            "idle RSS < 60 MiB (Raspberry Pi Zero 2 W)",
            result.idle_kib < 60 * 1024,
            f"{result.idle_kib / 1024:.1f} MiB",
        ),
        Verdict(
            "no growth from call state or the replay cache",
            growth_kib < 2 * 1024 and all(a == 0 for a in result.calls_active),
            f"{growth_kib / 1024:+.1f} MiB over the second batch,"
            f" {result.calls_active[-1]:.0f} calls left",
        ),
    ]


def verdict_table(verdicts: list[Verdict]) -> list[str]:
    """Every target, met or missed."""
    lines = ["## Targets", "", "| Target | Measured | Met |", "|---|---|---|"]
    lines += [f"| {v.target} | {v.measured} | {'yes' if v.met else 'NO'} |" for v in verdicts]
    return [*lines, ""]


REPORT_BEGIN = "<!-- make bench writes from here: do not edit by hand -->"
REPORT_END = "<!-- make bench writes up to here -->"


def splice(document: str, report: str) -> str:
    """`document` with the text between its report markers replaced by `report`."""
    head, begin, rest = document.partition(REPORT_BEGIN)
    _, end, tail = rest.partition(REPORT_END)
    if not begin or not end or REPORT_BEGIN in rest or REPORT_END in tail:
        raise ValueError(f"expected one {REPORT_BEGIN!r} and, after it, one {REPORT_END!r}")
    return f"{head}{REPORT_BEGIN}\n\n{report.strip()}\n\n{REPORT_END}{tail}"
