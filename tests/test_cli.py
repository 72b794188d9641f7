"""The admin command as a sysadmin uses it: separate processes, secrets on stdin only."""

from pathlib import Path

from tests.conftest import GITHUB_SEED, codes_near_now, run_totpd, write_config
from tests.lockout_support import RedisServer

pytest_plugins = ["tests.lockout_fixtures"]


def test_enrol_list_code_and_remove(config_path: Path) -> None:
    added = run_totpd(
        config_path,
        "account",
        "add",
        "github",
        "--label",
        "GitHub",
        stdin="jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp\n",
    )
    assert added.returncode == 0, added.stderr
    listed = run_totpd(config_path, "account", "list")
    assert listed.stdout.split("\t")[:2] == ["github", "GitHub"]
    assert GITHUB_SEED not in listed.stdout
    code = run_totpd(config_path, "account", "code", "github").stdout.split()[0]
    assert code in codes_near_now(GITHUB_SEED)
    removed = run_totpd(config_path, "account", "remove", "github")
    assert removed.returncode == 0
    assert run_totpd(config_path, "account", "list").stdout == ""


def test_enrol_from_an_otpauth_uri_keeps_its_parameters(config_path: Path) -> None:
    uri = f"otpauth://totp/ACME:alice?secret={GITHUB_SEED}&issuer=ACME&algorithm=SHA256&digits=8&period=60"
    added = run_totpd(config_path, "account", "add", "acme", "--label", "Acme", stdin=uri)
    assert added.returncode == 0, added.stderr
    row = run_totpd(config_path, "account", "list").stdout.split("\t")
    assert row[2:6] == ["totp", "SHA256", "8", "60s"]
    code = run_totpd(config_path, "account", "code", "acme").stdout.split()[0]
    assert len(code) == 8


def test_duplicate_account_is_refused_and_the_first_kept(config_path: Path) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    other = "KVKFKRCPNZQUYMLXOVYDSQKJKZDTSRLD"
    again = run_totpd(config_path, "account", "add", "github", "--label", "X", stdin=other)
    assert again.returncode == 1
    assert "already enrolled: github" in again.stderr
    code = run_totpd(config_path, "account", "code", "github").stdout.split()[0]
    assert code in codes_near_now(GITHUB_SEED)


def test_bad_secret_is_a_clear_error_that_does_not_echo_it(config_path: Path) -> None:
    bad = run_totpd(config_path, "account", "add", "x", "--label", "X", stdin="not-base32-!!\n")
    assert bad.returncode == 1
    assert bad.stderr.startswith("totpd: error: ")
    assert "not-base32" not in bad.stderr
    assert "Traceback" not in bad.stderr


def test_users_with_pins_from_stdin(config_path: Path) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    added = run_totpd(config_path, "user", "add", "alice", "--accounts", "github", stdin="482916\n")
    assert added.returncode == 0, added.stderr
    assert "keypad number 1" in added.stdout
    second = run_totpd(config_path, "user", "add", "bob", "--accounts", "github", stdin="739164\n")
    assert "keypad number 2" in second.stdout
    listed = run_totpd(config_path, "user", "list").stdout
    assert "alice\t1\tgithub\tany" in listed
    assert "482916" not in listed
    state = (config_path.parent / "state" / "directory.json").read_text()
    assert "482916" not in state
    assert "$argon2id$" in state
    assert run_totpd(config_path, "user", "passwd", "alice", stdin="593817\n").returncode == 0
    assert run_totpd(config_path, "user", "remove", "bob").returncode == 0
    assert "bob" not in run_totpd(config_path, "user", "list").stdout


def test_weak_pins_are_refused(config_path: Path) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    for pin, rule in (
        ("1234", "6 to 20"),
        ("111111", "too easy"),
        ("123456", "too easy"),
        ("12ab56", "digits only"),
    ):
        refused = run_totpd(config_path, "user", "add", "alice", "--accounts", "github", stdin=pin)
        assert refused.returncode == 1
        assert rule in refused.stderr
        assert pin not in refused.stderr
    assert run_totpd(config_path, "user", "list").stdout == ""


def test_user_with_unknown_account_is_refused(config_path: Path) -> None:
    refused = run_totpd(config_path, "user", "add", "alice", "--accounts", "nope", stdin="482916")
    assert refused.returncode == 1
    assert "unknown account(s): nope" in refused.stderr


def test_no_pin_on_stdin_is_a_clear_error(config_path: Path) -> None:
    refused = run_totpd(config_path, "user", "add", "alice", "--accounts", "", stdin="")
    assert refused.returncode == 1
    assert "nothing on standard input" in refused.stderr


def test_check_config_ok_and_broken(config_path: Path, tmp_path: Path) -> None:
    ok = run_totpd(config_path, "check-config")
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text('[server]\nlisten = "nowhere"\n')
    failed = run_totpd(broken, "check-config")
    assert failed.returncode == 1
    assert "server.listen" in failed.stderr


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
