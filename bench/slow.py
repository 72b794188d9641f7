"""Slow connections: thousands of half-sent requests held open against the daemon, directly
and through the shipped Caddyfile, while genuine calls are made; what each webhook of those
calls took, and what the siege cost the daemon."""

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from bench import servers
from bench.scenarios import CallTiming, Settings, genuine_call
from bench.servers import PIN, Server

SIEGE_CONNECTIONS = 5000  # more than the unit lets the daemon open (LimitNOFILE=4096)
RAMP_UP_S = 4.0


@dataclass(frozen=True)
class Siege:
    """One siege and the genuine calls made during it."""

    path: str  # "direct" or "through Caddy"
    connections: int
    duration_s: float
    attacker: dict[str, float]
    calls: list[CallTiming]
    daemon_connections_max: int  # the daemon's own count, sampled
    daemon_files_max: int  # its open file descriptors, sampled
    refused: dict[str, float]  # totpd_webhook_rejected_total by reason, during the siege


def _scrape(metrics_url: str) -> list[str]:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:  # noqa: S310 - loopback
        lines: list[str] = response.read().decode().splitlines()
    return lines


def _rejected(metrics_url: str) -> dict[str, float]:
    """totpd_webhook_rejected_total, by reason."""
    counts: dict[str, float] = {}
    for line in _scrape(metrics_url):
        if line.startswith("totpd_webhook_rejected_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = float(line.rsplit(" ", 1)[1])
    return counts


def _gauge(metrics_url: str, name: str) -> float:
    """An unlabelled gauge's value (0 when absent)."""
    for line in _scrape(metrics_url):
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


def _call(target: Server) -> CallTiming:
    """A genuine call; one that fails (the server refused or dropped it) did not complete."""
    try:
        return asyncio.run(genuine_call(target, [PIN, "1"]))
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"bench: a genuine call failed: {exc!r}", file=sys.stderr)
        return CallTiming(completed=False, heard_code=False, webhooks_ms=[])


def besiege(
    daemon: Server, metrics_url: str, target: Server, path: str, duration_s: float
) -> Siege:
    """SIEGE_CONNECTIONS slow connections against `target` for `duration_s`; three genuine
    calls to `target` once the siege has ramped up."""
    address = urlsplit(target.base_url)
    before = _rejected(metrics_url)
    attacker = subprocess.Popen(  # noqa: S603 - fixed argv
        [
            sys.executable,
            "-m",
            "bench.siege",
            address.hostname or "127.0.0.1",
            str(address.port),
            str(SIEGE_CONNECTIONS),
            str(duration_s),
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    peaks = {"connections": 0, "files": 0}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peaks["files"] = max(peaks["files"], daemon.open_files())
            held = int(_gauge(metrics_url, "totpd_webhook_connections"))
            peaks["connections"] = max(peaks["connections"], held)
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        time.sleep(RAMP_UP_S)
        calls = [_call(target) for _ in range(3)]
        output, _ = attacker.communicate(timeout=duration_s + 60)
    finally:
        done.set()
        watcher.join()
        if attacker.poll() is None:
            attacker.kill()
    after = _rejected(metrics_url)
    refused = {k: v - before.get(k, 0.0) for k, v in after.items() if v > before.get(k, 0.0)}
    return Siege(
        path,
        SIEGE_CONNECTIONS,
        duration_s,
        json.loads(output),
        calls,
        peaks["connections"],
        peaks["files"],
        refused,
    )


def slow_connections(settings: Settings, progress: Callable[[str], None]) -> list[Siege]:
    """The siege against the daemon itself, then through Caddy in front of it."""
    home = settings.workdir / "slow"
    config_path = servers.totpd_home(home)
    daemon = servers.start_totpd(config_path)
    metrics_url = servers.metrics_url(config_path)
    sieges: list[Siege] = []
    caddy = None
    try:
        duration_s = max(settings.duration_s * 2, 15.0)
        for path in ("direct", "through Caddy"):
            if path == "through Caddy":
                caddy = servers.start_caddy(daemon, home)
            target = caddy or daemon
            siege = besiege(daemon, metrics_url, target, path, duration_s)
            worst = max((ms for c in siege.calls for _, ms in c.webhooks_ms), default=0.0)
            progress(
                f"slow ({path}): {siege.attacker['held_mean']:,.0f} slow connections held on"
                f" average, daemon peak {siege.daemon_connections_max} connections and"
                f" {siege.daemon_files_max} files, slowest genuine webhook {worst:.0f} ms"
            )
            sieges.append(siege)
    finally:
        if caddy is not None:
            caddy.stop()
        daemon.stop()
    return sieges
