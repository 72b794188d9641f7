"""Seeds in a real Secret Service: gnome-keyring-daemon on a private D-Bus session.

Each test starts `dbus-run-session` running tests/secrets/fixtures/secret_service_session.sh, which
unlocks a login keyring in tmp_path with a password fed on its stdin. Nothing touches the
user's own session or keyrings.
"""

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import codes_near_now, run_totpd, write_config
from totpd import config as config_module
from totpd.errors import ConfigError, SecretStoreError
from totpd.secrets import open_store

HELPER = Path(__file__).parent / "fixtures" / "secret_service_session.sh"
BACKEND = "keyring.backends.SecretService.Keyring"
KEYRING_PASSWORD = "test keyring password"
SEED = "HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ"

pytestmark = pytest.mark.secret_service


@contextmanager
def secret_service(home: Path, password: str = KEYRING_PASSWORD) -> Iterator[dict[str, str]]:
    """A Secret Service session with its keyrings under `home`; yields its environment."""
    runtime = home / "run"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_RUNTIME_DIR": str(runtime),
    }
    with subprocess.Popen(
        ["dbus-run-session", "--", "sh", str(HELPER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    ) as session:
        assert session.stdin is not None
        assert session.stdout is not None
        try:
            session.stdin.write(password + "\n")
            session.stdin.flush()
            line = session.stdout.readline().strip()
            assert line.startswith("DBUS_SESSION_BUS_ADDRESS="), line
            yield {**env, "DBUS_SESSION_BUS_ADDRESS": line.partition("=")[2]}
        finally:
            session.stdin.close()  # the helper exits, the bus goes, gnome-keyring follows
            session.wait(timeout=20)


@pytest.fixture
def session_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process talks to a fresh, unlocked Secret Service for the test."""
    with secret_service(tmp_path / "home") as env:
        for name in ("HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"):
            monkeypatch.setenv(name, env[name])
        yield env


def secret_service_config(tmp_path: Path) -> Path:
    """A config that keeps seeds in the Secret Service."""
    return write_config(tmp_path, f'[secrets]\nbackend = "{BACKEND}"\n')


def test_a_seed_goes_into_the_keyring_and_back(tmp_path: Path, session_env: dict[str, str]) -> None:
    config = config_module.load(secret_service_config(tmp_path))
    store = open_store(config)
    assert type(store.backend).__module__ == "keyring.backends.SecretService"
    store.set_seed("github", SEED)
    assert open_store(config).seed("github") == SEED
    store.delete_seed("github")
    with pytest.raises(SecretStoreError, match="no seed for account 'github'"):
        store.seed("github")
    assert not (config.paths.state_dir / "vault.bin").exists()  # totpd's vault is not used


def test_the_seed_is_stored_as_a_totpd_item(tmp_path: Path, session_env: dict[str, str]) -> None:
    import secretstorage

    open_store(config_module.load(secret_service_config(tmp_path))).set_seed("github", SEED)
    connection = secretstorage.dbus_init()
    try:
        items = list(
            secretstorage.search_items(connection, {"service": "totpd", "username": "seed:github"})
        )
        assert [item.get_secret() for item in items] == [SEED.encode()]
    finally:
        connection.close()


def test_the_cli_enrols_and_reads_through_the_keyring(
    tmp_path: Path, session_env: dict[str, str]
) -> None:
    config_path = secret_service_config(tmp_path)
    added = run_totpd(
        config_path, "account", "add", "gh", "--label", "GitHub", stdin=SEED, env=session_env
    )
    assert added.returncode == 0, added.stderr
    code = run_totpd(config_path, "account", "code", "gh", env=session_env)
    assert code.returncode == 0, code.stderr
    assert code.stdout.split()[0] in codes_near_now(SEED)


def test_seeds_survive_a_new_session_with_the_same_keyring(tmp_path: Path) -> None:
    config = config_module.load(secret_service_config(tmp_path))
    home = tmp_path / "home"
    with secret_service(home) as env:
        result = run_totpd(
            config.source or Path(), "account", "add", "gh", "--label", "GH", stdin=SEED, env=env
        )
        assert result.returncode == 0, result.stderr
    assert (home / "data" / "keyrings" / "login.keyring").exists()
    assert SEED.encode() not in (home / "data" / "keyrings" / "login.keyring").read_bytes()
    with secret_service(home) as env:
        code = run_totpd(config.source or Path(), "account", "code", "gh", env=env)
        assert code.returncode == 0, code.stderr


def test_without_a_secret_service_the_error_is_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    config = config_module.load(secret_service_config(tmp_path))
    with pytest.raises(
        ConfigError, match=r"secrets\.backend: '.*SecretService.*' is not usable here"
    ):
        open_store(config)
    result = run_totpd(
        config.source or Path(),
        *("account", "add", "gh", "--label", "GitHub"),
        stdin=SEED,
        env={"DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"},
    )
    assert result.returncode == 1
    assert "is not usable here" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_backend_is_a_config_error(tmp_path: Path) -> None:
    config = config_module.load(write_config(tmp_path, '[secrets]\nbackend = "no.such.Keyring"\n'))
    with pytest.raises(ConfigError, match=r"cannot load keyring backend 'no\.such\.Keyring'"):
        open_store(config)


def test_a_locked_keyring_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    config_path = secret_service_config(tmp_path)
    home = tmp_path / "home"
    with secret_service(home) as env:
        run_totpd(config_path, "account", "add", "gh", "--label", "GH", stdin=SEED, env=env)
    with secret_service(home, password="not the keyring password") as env:
        result = run_totpd(config_path, "account", "code", "gh", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "totpd: error: secret store (Keyring): cannot read (KeyringLocked)"
    )
