"""One version, pyproject's: `totpd --version` and the metrics' build info both say it."""

import subprocess
import sys
import tomllib

from tests.helpers import REPO
from totpd.metrics import create_metrics


def declared_version() -> str:
    """The version pyproject.toml declares."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    version: str = project["version"]
    return version


def test_the_command_says_the_declared_version() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "totpd", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert shown.stdout == f"totpd {declared_version()}\n"


def test_the_build_info_metric_carries_the_declared_version() -> None:
    registry = create_metrics().registry
    assert registry.get_sample_value("totpd_build_info", {"version": declared_version()}) == 1.0
