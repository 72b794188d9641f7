"""The VM test's own shell scripts, checked in `make test` (no VM needed)."""

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_the_vm_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: scripts/setup installs it"
    done = subprocess.run(
        [shellcheck, str(HERE / "build-image"), str(HERE / "setup-host")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout
