"""`totpd check-config` as a sysadmin uses it: a separate process, a clear line for each fault."""

from pathlib import Path

import pytest

from tests.helpers import run_totpd, write_config
from tests.servers import RedisServer


def test_check_config_ok_and_broken(config_path: Path, tmp_path: Path) -> None:
    ok = run_totpd(config_path, "check-config")
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text('[server]\nlisten = "nowhere"\n')
    failed = run_totpd(broken, "check-config")
    assert failed.returncode == 1
    assert "server.listen" in failed.stderr


@pytest.mark.redis
def test_check_config_reads_the_lockout_storage(tmp_path: Path, redis_server: RedisServer) -> None:
    def check(storage: str) -> tuple[int, str]:
        path = write_config(tmp_path, f'[lockout]\nstorage = "{storage}"\n')
        done = run_totpd(path, "check-config")
        return done.returncode, done.stdout + done.stderr

    status, output = check("embedded")
    assert status == 0, output
    assert "lockout storage embedded with 0 lockouts" in output
    status, output = check(redis_server.url)
    assert status == 0, output
    assert "lockout storage redis with 0 lockouts" in output
    redis_server.stop()
    status, output = check(redis_server.url)
    assert status == 1
    assert "totpd: error: lockout storage" in output
    # A password in the URI is never shown, not even when Redis is unreachable.
    status, output = check(redis_server.url.replace("//", "//:hunter2-redis-password@"))
    assert status == 1
    assert "hunter2" not in output


def test_config_may_come_from_the_environment(config_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "totpd", "check-config"],
        env={
            "TOTPD_CONFIG": str(config_path),
            "TOTPD_VONAGE_SIGNATURE_SECRET": "s" * 32,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_missing_signature_secret_is_a_clear_error(config_path: Path) -> None:
    result = run_totpd(config_path, "check-config", env={"TOTPD_VONAGE_SIGNATURE_SECRET": ""})
    assert result.returncode == 1
    assert "signature secret" in result.stderr
