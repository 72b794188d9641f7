"""The shipped alert rules, checked and unit-tested by Prometheus's own promtool."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import DEPLOY

PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "totpd-rules.yml"
RULE_TESTS = PROMETHEUS / "totpd-rules.test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool binary (Debian package prometheus)."""
    found = shutil.which("promtool")
    assert found, "promtool is missing: scripts/setup installs the Debian package prometheus"
    return found


def run(*command: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output."""
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=60, check=False)


def test_promtool_accepts_the_rules(promtool: str) -> None:
    done = run(promtool, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 12 rules found" in done.stdout


def test_the_alert_unit_tests_pass(promtool: str) -> None:
    done = run(promtool, "test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_refuses_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "rules.yml"
    broken.write_text(RULES.read_text().replace("increase(totpd_pin_failures_total", "increase(("))
    done = run(promtool, "check", "rules", str(broken))
    assert done.returncode != 0


def test_a_brute_force_threshold_nobody_reaches_fails_the_unit_tests(
    promtool: str, tmp_path: Path
) -> None:
    # The unit tests really evaluate the rule: raise the threshold and the attack is missed.
    lax = RULES.read_text().replace("[15m]))\n          >= 5", "[15m]))\n          >= 500")
    assert lax != RULES.read_text()
    (tmp_path / RULES.name).write_text(lax)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    done = run(promtool, "test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert done.returncode != 0
    assert "TotpdPinBruteForce" in done.stdout + done.stderr
