"""`totpd user ...` as a sysadmin uses it: separate processes, PINs on stdin only."""

from pathlib import Path

from tests.helpers import GITHUB_SEED, run_totpd


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
