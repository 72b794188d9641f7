"""`totpd user ...` as a sysadmin uses it: separate processes, PINs on stdin only."""

from pathlib import Path

import pytest

from tests.helpers import FAST_ARGON2, GITHUB_SEED, run_totpd, write_config
from totpd import config as config_module
from totpd.config import Config
from totpd.pins import PinHasher
from totpd.roster import RosterFile


def test_users_with_pins_from_stdin(config_path: Path) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    added = run_totpd(
        config_path, "user", "add", "alice", "--accounts", "github", stdin="48291673\n"
    )
    assert added.returncode == 0, added.stderr
    assert "keypad number 1" in added.stdout
    second = run_totpd(
        config_path, "user", "add", "bob", "--accounts", "github", stdin="73916482\n"
    )
    assert "keypad number 2" in second.stdout
    listed = run_totpd(config_path, "user", "list").stdout
    assert "alice\t1\tgithub\tany" in listed
    assert "48291673" not in listed
    state = (config_path.parent / "state" / "directory.json").read_text()
    assert "48291673" not in state
    assert "$argon2id$" in state
    assert run_totpd(config_path, "user", "passwd", "alice", stdin="59381746\n").returncode == 0
    assert run_totpd(config_path, "user", "remove", "bob").returncode == 0
    assert "bob" not in run_totpd(config_path, "user", "list").stdout


def test_weak_pins_are_refused(config_path: Path) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    for pin, rule in (
        ("1234567", "8 to 20"),
        ("11111111", "too easy"),
        ("12345678", "too easy"),
        ("12ab5678", "digits only"),
    ):
        refused = run_totpd(config_path, "user", "add", "alice", "--accounts", "github", stdin=pin)
        assert refused.returncode == 1
        assert rule in refused.stderr
        assert pin not in refused.stderr
    assert run_totpd(config_path, "user", "list").stdout == ""


def test_user_with_unknown_account_is_refused(config_path: Path) -> None:
    refused = run_totpd(config_path, "user", "add", "alice", "--accounts", "nope", stdin="48291673")
    assert refused.returncode == 1
    assert "unknown account(s): nope" in refused.stderr


@pytest.mark.parametrize("number", ["0", "-3", "1000000"])
def test_a_keypad_number_out_of_range_is_refused_not_replaced(
    config_path: Path, number: str
) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    refused = run_totpd(
        config_path,
        "user",
        "add",
        "alice",
        "--accounts",
        "github",
        "--number",
        number,
        stdin="48291673",
    )
    assert refused.returncode != 0
    assert refused.stderr.strip() == f"totpd: error: keypad number {number} must be 1 to 999999"
    assert run_totpd(config_path, "user", "list").stdout == ""


def test_no_pin_on_stdin_is_a_clear_error(config_path: Path) -> None:
    refused = run_totpd(config_path, "user", "add", "alice", "--accounts", "", stdin="")
    assert refused.returncode == 1
    assert "nothing on standard input" in refused.stderr


def test_a_pin_the_user_chooses_has_8_digits_by_default(config_path: Path) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    short = run_totpd(
        config_path, "user", "add", "alice", "--accounts", "github", stdin="4829163\n"
    )
    assert short.returncode == 1
    assert "a PIN you choose has 8 to 20 digits" in short.stderr
    assert "--generate-pin" in short.stderr  # the way to a shorter, random one
    chosen = run_totpd(
        config_path, "user", "add", "alice", "--accounts", "github", stdin="48291673\n"
    )
    assert chosen.returncode == 0, chosen.stderr


def generated_pin(output: str) -> str:
    """The PIN a --generate-pin command printed: alone on a line that says so."""
    [line] = [line for line in output.splitlines() if line.startswith("PIN: ")]
    pin = line.removeprefix("PIN: ").split()[0]
    assert "only time it is shown" in line
    return pin


def test_an_assigned_pin_is_random_printed_once_and_only_its_hash_kept(
    config_path: Path, config: Config
) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    pins = []
    for name in ("alice", "bob", "carol"):
        added = run_totpd(
            config_path, "user", "add", name, "--accounts", "github", "--generate-pin", stdin=""
        )
        assert added.returncode == 0, added.stderr
        pins.append(generated_pin(added.stdout))
    assert all(len(pin) == 6 and pin.isdigit() for pin in pins)  # pins.generated_length
    assert len(set(pins)) == 3
    roster = RosterFile(config.paths.state_dir).current()
    stored = (config.paths.state_dir / "directory.json").read_text()
    hasher = PinHasher(config.pins)
    for name, pin in zip(("alice", "bob", "carol"), pins, strict=True):
        assert pin not in stored
        assert hasher.verify_sync(roster.users[name].pin_hash, pin).ok
    assert "PIN" not in run_totpd(config_path, "user", "list").stdout


def test_passwd_can_assign_a_new_pin_of_the_configured_length(tmp_path: Path) -> None:
    path = write_config(tmp_path, pins=FAST_ARGON2 + "generated_length = 10\n")
    run_totpd(path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    run_totpd(path, "user", "add", "alice", "--accounts", "github", stdin="48291673\n")
    changed = run_totpd(path, "user", "passwd", "alice", "--generate-pin", stdin="")
    assert changed.returncode == 0, changed.stderr
    pin = generated_pin(changed.stdout)
    assert len(pin) == 10
    config = config_module.load(path)
    user = RosterFile(config.paths.state_dir).current().users["alice"]
    assert PinHasher(config.pins).verify_sync(user.pin_hash, pin).ok
    assert not PinHasher(config.pins).verify_sync(user.pin_hash, "48291673").ok


@pytest.mark.parametrize(("key", "value"), [("generated_length", 5), ("min_length", 3)])
def test_pin_lengths_below_the_floor_are_refused(tmp_path: Path, key: str, value: int) -> None:
    path = write_config(tmp_path, f"[pins]\n{key} = {value}\n", pins="")
    checked = run_totpd(path, "check-config")
    assert checked.returncode == 1
    assert f"pins.{key}: {value} is out of range" in checked.stderr


def test_each_user_hears_their_own_language(config_path: Path) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    added = run_totpd(
        config_path, "user", "add", "alice", "--accounts", "github", "--language", "de-de",
        stdin="48291673\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    run_totpd(config_path, "user", "add", "bob", "--accounts", "github", stdin="73916428\n")
    listed = run_totpd(config_path, "user", "list").stdout.splitlines()
    assert listed == [
        "alice\t1\tgithub\tany\tde-DE\tduress: no",
        "bob\t2\tgithub\tany\ten-GB (default)\tduress: no",
    ]
    changed = run_totpd(config_path, "user", "set-language", "bob", "FR-fr")
    assert (changed.returncode, changed.stdout) == (0, "bob now hears fr-FR\n")
    back = run_totpd(config_path, "user", "set-language", "alice", "default")
    assert (back.returncode, back.stdout) == (0, "alice now hears the default, en-GB\n")
    listed = run_totpd(config_path, "user", "list").stdout.splitlines()
    assert listed == [
        "alice\t1\tgithub\tany\ten-GB (default)\tduress: no",
        "bob\t2\tgithub\tany\tfr-FR\tduress: no",
    ]


def test_a_language_without_prompts_is_refused_and_changes_nothing(config_path: Path) -> None:
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    refused = run_totpd(
        config_path, "user", "add", "alice", "--accounts", "github", "--language", "de-AT",
        stdin="48291673\n",
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "totpd: error: no prompts in language 'de-AT'; totpd speaks de-DE, en-GB, en-US,"
    )
    assert run_totpd(config_path, "user", "list").stdout == ""
    run_totpd(config_path, "user", "add", "alice", "--accounts", "github", stdin="48291673\n")
    refused = run_totpd(config_path, "user", "set-language", "alice", "klingon")
    assert refused.returncode == 1
    assert "no prompts in language 'klingon'" in refused.stderr
    assert run_totpd(config_path, "user", "list").stdout.endswith("\ten-GB (default)\tduress: no\n")
