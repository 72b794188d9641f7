"""The servers under test, each a separate process on 127.0.0.1: totpd as its real daemon, the
bare aiohttp floor, and the Express sample totpd replaces."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bench.traffic import Signer
from tests.helpers import APPLICATION_ID, free_port

SIGNATURE_SECRET = "bench-signature-secret-0123456789abcdef"  # noqa: S105 - a throwaway test value
PUBLIC_URL = "https://totpd.bench.invalid"
PIN = "482916"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
SIGNER = Signer(SIGNATURE_SECRET.encode(), APPLICATION_ID)
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port (or the process died)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout_s:.0f}s")


@dataclass
class Server:
    """A server and where to reach it; `process` is None for one somebody else runs."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def rss_kib(self) -> int:
        """Resident set size of the process, in KiB."""
        if self.process is None:
            raise RuntimeError(f"{self.name} runs elsewhere: its memory is not ours to read")
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")

    def cpu_s(self) -> float | None:
        """User + system CPU time the process (all its threads) has used so far."""
        if self.process is None:
            return None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _spawn(
    name: str, argv: list[str], port: int, log_path: Path, env: dict[str, str], cwd: Path
) -> Server:
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv built here
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_for_port(port, process)
    except (RuntimeError, TimeoutError) as exc:
        server.stop()
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} did not start: {exc}\n{tail}") from None
    return server


def _totpd_env() -> dict[str, str]:
    return {**os.environ, "TOTPD_VONAGE_SIGNATURE_SECRET": SIGNATURE_SECRET}


def _totpd(config_path: Path, *args: str, stdin: str = "") -> str:
    result = subprocess.run(  # noqa: S603 - fixed argv built here
        [sys.executable, "-m", "totpd", "--config", str(config_path), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=_totpd_env(),
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"totpd {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def totpd_home(home: Path, vonage_extra: str = "", extra: str = "") -> Path:
    """A config and state directory with one account and one user (default Argon2 cost).

    `vonage_extra` goes into [vonage]; `extra` (whole sections) at the end.
    """
    home.mkdir(parents=True, exist_ok=True)
    config_path = home / "totpd.toml"
    config_path.write_text(
        f"""
[server]
listen = "127.0.0.1:{free_port()}"
public_url = "{PUBLIC_URL}"

[vonage]
application_id = "{APPLICATION_ID}"
{vonage_extra}

[metrics]
listen = "127.0.0.1:{free_port()}"

[paths]
state_dir = "{home / "state"}"
{extra}
"""
    )
    _totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=SEED + "\n")
    _totpd(config_path, "user", "add", "alice", "--accounts", "github", stdin=PIN + "\n")
    return config_path


def _port(config_path: Path, section: str) -> int:
    listen: str = tomllib.loads(config_path.read_text())[section]["listen"]
    return int(listen.rsplit(":", 1)[1])


def start_totpd(config_path: Path) -> Server:
    """`totpd serve` on one process, as systemd would run it."""
    argv = [sys.executable, "-m", "totpd", "--config", str(config_path), "serve"]
    port = _port(config_path, "server")
    log_path = config_path.parent / "totpd.log"
    return _spawn("totpd", argv, port, log_path, _totpd_env(), config_path.parent)


def metrics_url(config_path: Path) -> str:
    """Where the daemon serves /metrics."""
    return f"http://127.0.0.1:{_port(config_path, 'metrics')}/metrics"


def start_floor(workdir: Path) -> Server:
    """The bare aiohttp handler returning totpd's answer NCCO: the floor for one process."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.floor", str(port)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return _spawn("floor", argv, port, workdir / "floor.log", env, workdir)


def prepare_baseline(baseline_dir: Path, workdir: Path) -> Path:
    """Copy the Express sample into `workdir` and install its packages there."""
    if not (baseline_dir / "totp.js").is_file():
        raise RuntimeError(f"no Express baseline at {baseline_dir} (totp.js missing)")
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (scripts/bench installs nodejs and npm)")
    target = workdir / "baseline"
    shutil.copytree(baseline_dir, target, ignore=shutil.ignore_patterns("node_modules"))
    subprocess.run(  # noqa: S603 - fixed argv
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=target,
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    return target


def start_baseline(app_dir: Path) -> Server:
    """`PORT=... node totp.js`, as the sample's README runs it."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed (scripts/bench installs nodejs and npm)")
    port = free_port()
    env = {**os.environ, "PORT": str(port), "NODE_ENV": "production"}
    return _spawn("express", [node, "totp.js"], port, app_dir / "express.log", env, app_dir)
