"""`make bench`: every measurement in one run, printed as one Markdown report.

python -m bench [--rounds N] [--duration S] [--baseline-dir DIR | --baseline-url URL]
                [--only NAME ...] [--output FILE] [--docs FILE] [--strict]
"""

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import report, scenarios, servers
from bench.report import Verdict
from bench.scenarios import Settings
from bench.servers import Server

REPO = Path(__file__).resolve().parent.parent
BASELINE_ENV = "TOTPD_BENCH_BASELINE"
# In a checkout the shared material sits beside the repository.
DEFAULT_BASELINE = REPO.parent / "shared" / "baseline" / "seed-express"
MEASUREMENTS = ("throughput", "argon2", "flood", "memory")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (default 3)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per measured run (default 10)"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument(
        "--baseline-dir",
        type=Path,
        default=Path(os.environ.get(BASELINE_ENV, DEFAULT_BASELINE)),
        help=f"the Express sample to copy, install and run (default ${BASELINE_ENV}, or"
        " ../shared/baseline/seed-express beside the repository)",
    )
    parser.add_argument(
        "--baseline-url",
        help="measure this already running baseline instead (its answer URL, sent plain GETs)",
    )
    parser.add_argument(
        "--only", action="append", choices=MEASUREMENTS, help="run only these (repeatable)"
    )
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument(
        "--docs",
        type=Path,
        help="put the report of a whole run (no --only) between the report markers of this"
        " Markdown file (scripts/bench: docs/performance.md)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.rounds < 1 or not 1 <= args.duration <= 300 or not 1 <= args.connections <= 1000:
        parser.error("rounds >= 1, duration 1..300 s, connections 1..1000")
    if args.docs and not args.only:
        try:  # before the run, not after minutes of it
            report.splice(args.docs.read_text(), "")
        except (OSError, ValueError) as error:
            parser.error(f"--docs {args.docs}: {error}")
    return args


def progress(text: str) -> None:
    """A progress line on stderr, so stdout is the report alone."""
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _throughput(args: argparse.Namespace, workdir: Path) -> tuple[list[str], list[Verdict]]:
    started: list[Server] = []
    try:
        if args.baseline_url:
            baseline = Server("baseline", args.baseline_url.rstrip("/"))
            url = args.baseline_url
        else:
            progress(f"installing the Express sample from {args.baseline_dir}")
            app_dir = servers.prepare_baseline(args.baseline_dir, workdir)
            baseline = servers.start_baseline(app_dir)
            started.append(baseline)
            url = f"{baseline.base_url}/webhooks/answer"
        floor = servers.start_floor(workdir)
        started.append(floor)
        settings = Settings(workdir, args.duration, args.rounds, args.connections, url)
        result = scenarios.throughput(settings, baseline, floor, progress)
    finally:
        for server in started:
            server.stop()
    section = report.throughput_section(result, args.duration, args.connections)
    return section, report.throughput_verdicts(result)


def _argon2(args: argparse.Namespace, workdir: Path) -> tuple[list[str], list[Verdict]]:
    result = scenarios.argon2_isolation(Settings(workdir, args.duration), progress)
    return report.isolation_section(result), report.isolation_verdicts(result)


def _flood(args: argparse.Namespace, workdir: Path) -> tuple[list[str], list[Verdict]]:
    result = scenarios.flood(Settings(workdir, args.duration), progress)
    return report.flood_section(result), report.flood_verdicts(result)


def _memory(args: argparse.Namespace, workdir: Path) -> tuple[list[str], list[Verdict]]:
    result = scenarios.memory(Settings(workdir, args.duration), progress)
    return report.memory_section(result), report.memory_verdicts(result)


RUNNERS: dict[str, Callable[[argparse.Namespace, Path], tuple[list[str], list[Verdict]]]] = {
    "throughput": _throughput,
    "argon2": _argon2,
    "flood": _flood,
    "memory": _memory,
}


def main(argv: list[str] | None = None) -> int:
    """Run the measurements, print the report; 1 on --strict and a missed target."""
    args = parse_args(argv)
    started_s = time.monotonic()
    sections: list[str] = []
    verdicts: list[Verdict] = []
    with tempfile.TemporaryDirectory(prefix="totpd-bench-") as tmp:
        for name in args.only or MEASUREMENTS:
            progress(f"{name} ...")
            section, met = RUNNERS[name](args, Path(tmp))
            sections += section
            verdicts += met
    lines = [
        "## This run",
        "",
        "Run `make bench` (it installs what it needs, then runs `scripts/bench`; options:"
        " `scripts/bench --help`). This run took"
        f" {(time.monotonic() - started_s) / 60:.1f} minutes on: {report.machine()}",
        "",
        *report.verdict_table(verdicts),
        *sections,
    ]
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)
    if args.docs and args.only:
        progress(f"{args.docs} left as it was: it keeps the report of a whole run")
    elif args.docs:
        args.docs.write_text(report.splice(args.docs.read_text(), text))
        progress(f"report written into {args.docs}")
    missed = [v for v in verdicts if not v.met]
    return 1 if args.strict and missed else 0
