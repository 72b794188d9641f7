"""Load with wrk: one run against one server, summarised by the Lua script's `done()`."""

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import Server

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "replay.lua"


@dataclass(frozen=True)
class Run:
    """What one wrk run measured."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    statuses: dict[int, int] = field(default_factory=dict)
    cpu_us_per_request: float | None = None

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.duration_s


def wrk_path() -> str:
    """The wrk binary (scripts/setup installs it)."""
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed (scripts/setup installs it)")
    return path


def run(
    server: Server,
    url: str,
    requests_file: Path | None,
    duration_s: float,
    connections: int,
    delay_ms: int = 0,
    count_statuses: bool = False,
) -> Run:
    """Run wrk for `duration_s` against `url`.

    With `requests_file`, each request comes from that file (see replay.lua); without it wrk
    sends a plain GET to `url` (the unsigned baseline).
    """
    argv = [
        wrk_path(),
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(duration_s))}s",  # wrk takes whole seconds
        "--timeout",
        "5s",
        "--script",
        str(LUA_SCRIPT),
        url,
    ]
    if requests_file is not None:
        argv += [str(requests_file), "1", str(delay_ms), "1" if count_statuses else "0"]
    cpu_before = server.cpu_s()
    completed = subprocess.run(  # noqa: S603 - fixed argv built here
        argv, capture_output=True, text=True, timeout=duration_s + 120, check=False
    )
    cpu_after = server.cpu_s()
    summary = next(
        (line[6:] for line in completed.stdout.splitlines() if line.startswith("BENCH ")), None
    )
    if completed.returncode != 0 or summary is None:
        raise RuntimeError(f"wrk failed: {completed.stderr.strip() or completed.stdout[-500:]}")
    fields = json.loads(summary)
    requests = int(fields["requests"])
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and requests:
        cpu_us = (cpu_after - cpu_before) * 1e6 / requests
    return Run(
        requests=requests,
        duration_s=fields["duration_us"] / 1e6,
        p50_ms=fields["p50_us"] / 1000,
        p90_ms=fields["p90_us"] / 1000,
        p99_ms=fields["p99_us"] / 1000,
        max_ms=fields["max_us"] / 1000,
        non_2xx=int(fields["non_2xx"]),
        socket_errors=sum(
            int(fields[k]) for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        statuses={int(k): int(v) for k, v in fields["statuses"].items()},
        cpu_us_per_request=cpu_us,
    )
