"""`totpd user passwd NAME --duress` and `user duress`, as a sysadmin runs them: separate
processes, PINs on standard input only, never on the command line or in any output."""

from pathlib import Path

import pytest

from tests.helpers import GITHUB_SEED, run_totpd
from totpd import config as config_module
from totpd.pins import PinHasher
from totpd.roster import RosterFile
from totpd.users import User

PIN = "48291673"
DURESS_PIN = "73829164"


@pytest.fixture
def alice(config_path: Path) -> Path:
    """A config with alice enrolled (PIN PIN, no duress PIN); returns its path."""
    run_totpd(config_path, "account", "add", "github", "--label", "GitHub", stdin=GITHUB_SEED)
    added = run_totpd(config_path, "user", "add", "alice", "--accounts", "github", stdin=PIN)
    assert added.returncode == 0, added.stderr
    return config_path


def stored(config_path: Path, name: str = "alice") -> User:
    """The user as directory.json holds her now."""
    config = config_module.load(config_path)
    return RosterFile(config.paths.state_dir).current().users[name]


def verifies(config_path: Path, pin_hash: str, pin: str) -> bool:
    """True when `pin` matches `pin_hash` (real Argon2, the config's parameters)."""
    return PinHasher(config_module.load(config_path).pins).verify_sync(pin_hash or None, pin).ok


def directory_text(config_path: Path) -> str:
    return (config_path.parent / "state" / "directory.json").read_text()


def test_a_duress_pin_from_stdin_is_kept_as_an_argon2_hash_of_its_own(alice: Path) -> None:
    done = run_totpd(alice, "user", "passwd", "alice", "--duress", stdin=f"{DURESS_PIN}\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "duress PIN set for alice: refused like a wrong PIN, and reported to the [notify] targets\n"
    )
    user = stored(alice)
    assert user.duress_hash.startswith("$argon2id$")
    assert verifies(alice, user.duress_hash, DURESS_PIN)
    assert not verifies(alice, user.duress_hash, PIN)
    assert verifies(alice, user.pin_hash, PIN)  # the PIN itself is untouched
    assert not user.duress_freezes
    assert DURESS_PIN not in directory_text(alice)
    assert DURESS_PIN not in done.stdout + done.stderr


def test_a_duress_pin_equal_to_the_pin_is_refused_and_changes_nothing(alice: Path) -> None:
    before = directory_text(alice)
    refused = run_totpd(alice, "user", "passwd", "alice", "--duress", stdin=f"{PIN}\n")
    assert refused.returncode == 1
    assert refused.stderr == "totpd: error: alice: the duress PIN must differ from the PIN\n"
    assert PIN not in refused.stdout + refused.stderr
    assert directory_text(alice) == before


def test_a_new_pin_equal_to_the_duress_pin_is_refused_and_changes_nothing(alice: Path) -> None:
    run_totpd(alice, "user", "passwd", "alice", "--duress", stdin=DURESS_PIN)
    before = directory_text(alice)
    refused = run_totpd(alice, "user", "passwd", "alice", stdin=f"{DURESS_PIN}\n")
    assert refused.returncode == 1
    assert refused.stderr == "totpd: error: alice: the PIN must differ from the duress PIN\n"
    assert DURESS_PIN not in refused.stdout + refused.stderr
    assert directory_text(alice) == before
    changed = run_totpd(alice, "user", "passwd", "alice", stdin="59381746\n")
    assert changed.returncode == 0, changed.stderr
    assert verifies(alice, stored(alice).duress_hash, DURESS_PIN)  # kept across a PIN change


def test_a_duress_pin_follows_the_pin_policy(alice: Path) -> None:
    for pin, rule in (("7382916", "8 to 20"), ("12345678", "too easy"), ("7382916a", "digits")):
        refused = run_totpd(alice, "user", "passwd", "alice", "--duress", stdin=pin)
        assert refused.returncode == 1
        assert rule in refused.stderr
        assert pin not in refused.stderr
    assert stored(alice).duress_hash == ""


def test_an_assigned_duress_pin_is_printed_once_and_differs_from_the_pin(alice: Path) -> None:
    done = run_totpd(alice, "user", "passwd", "alice", "--duress", "--generate-pin")
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("duress PIN: ")]
    assigned = line.removeprefix("duress PIN: ").split()[0]
    assert len(assigned) == 6
    assert assigned.isdigit()
    assert verifies(alice, stored(alice).duress_hash, assigned)
    assert assigned not in directory_text(alice)


def test_user_list_says_whether_a_duress_pin_is_set_and_nothing_more(alice: Path) -> None:
    assert run_totpd(alice, "user", "list").stdout.rstrip("\n").endswith("\tduress: no")
    run_totpd(alice, "user", "passwd", "alice", "--duress", stdin=DURESS_PIN)
    listed = run_totpd(alice, "user", "list").stdout
    assert listed.rstrip("\n").endswith("\tduress: yes")
    assert "$argon2" not in listed
    assert DURESS_PIN not in listed
    run_totpd(alice, "user", "duress", "alice", "--freeze")
    listed = run_totpd(alice, "user", "list").stdout
    assert listed.rstrip("\n").endswith("\tduress: yes, freezes the codes")


def test_the_freeze_is_set_with_the_duress_pin_or_on_its_own(alice: Path) -> None:
    frozen = run_totpd(alice, "user", "passwd", "alice", "--duress", "--freeze", stdin=DURESS_PIN)
    assert frozen.returncode == 0, frozen.stderr
    assert "it also freezes alice's codes until `totpd unlock --user alice`" in frozen.stdout
    assert stored(alice).duress_freezes
    kept = run_totpd(alice, "user", "passwd", "alice", "--duress", stdin="91827364")
    assert kept.returncode == 0, kept.stderr
    assert stored(alice).duress_freezes  # a new duress PIN keeps the setting
    thawed = run_totpd(alice, "user", "duress", "alice", "--no-freeze")
    assert thawed.stdout == "alice's duress PIN no longer freezes the codes\n"
    assert not stored(alice).duress_freezes
    assert verifies(alice, stored(alice).duress_hash, "91827364")
    removed = run_totpd(alice, "user", "duress", "alice", "--remove")
    assert removed.stdout == "alice has no duress PIN now\n"
    assert stored(alice).duress_hash == ""
    assert not stored(alice).duress_freezes
    assert "duress" not in directory_text(alice)  # as a directory without one was written


def test_a_freeze_without_a_duress_pin_is_refused(alice: Path) -> None:
    refused = run_totpd(alice, "user", "duress", "alice", "--freeze")
    assert refused.returncode == 1
    assert refused.stderr == (
        "totpd: error: alice has no duress PIN: set one first (totpd user passwd alice --duress)\n"
    )
    assert not stored(alice).duress_freezes
    both = run_totpd(alice, "user", "passwd", "alice", "--freeze", stdin="59381746")
    assert both.returncode == 1  # --freeze belongs to --duress
    assert "--freeze and --no-freeze go with --duress" in both.stderr
    assert verifies(alice, stored(alice).pin_hash, PIN)
