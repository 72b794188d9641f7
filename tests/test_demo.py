"""The README's first command: the demo runs a whole call and leaves nothing running."""

import os
import re
import subprocess
from pathlib import Path

from tests.helpers import REPO, free_port, wait_for_port


def test_demo_walks_a_whole_call_and_stops_its_daemon(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "DEMO_DIR": str(tmp_path / "demo"),
        "DEMO_PORT": str(port),
        "DEMO_METRICS_PORT": str(metrics_port),
    }
    env.pop("TOTPD_VONAGE_SIGNATURE_SECRET", None)  # the demo makes its own
    demo = subprocess.run(
        [str(REPO / "scripts" / "demo")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    heard = re.findall(r"Your Demo account code is: ([\d ]+)\.", demo.stdout)
    assert len(heard) == 2  # the first reading, then "press 1" for a fresh one
    assert demo.stdout.rstrip().splitlines()[-1].split()[0].isdigit()  # `account code` output
    assert "totpd: Goodbye.\n[call completed]" in demo.stdout
    try:
        wait_for_port(port, timeout_s=0.5)
    except TimeoutError:
        return  # nothing listens any more: the daemon was stopped
    raise AssertionError(f"the demo left its daemon listening on port {port}")
