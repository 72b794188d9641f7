"""`totpd --version` names the build: the package build writes it, a checkout says so."""

import subprocess
import sys

import totpd


def test_a_checkout_says_it_runs_from_source() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "totpd", "--version"], capture_output=True, text=True
    )
    assert done.stdout == f"totpd {totpd.__version__} (from source)\n"
