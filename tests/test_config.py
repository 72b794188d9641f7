"""Config loading: every mistake is caught and names its key."""

from pathlib import Path

import pytest

from tests.helpers import REPO
from totpd.config import Listen, load, parse
from totpd.errors import ConfigError


def error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return str(caught.value)


def test_empty_config_gives_documented_defaults() -> None:
    config = parse("")
    assert config.server.listen == Listen("127.0.0.1", 8080)
    assert config.metrics.listen == Listen("127.0.0.1", 9464)
    assert config.admin.listen is None
    assert config.paths.state_dir == Path("/var/lib/totpd")
    assert (config.call.max_pin_attempts, config.call.min_seconds_left) == (3, 8)
    assert config.pins.min_length == 6


def test_the_shipped_example_is_valid() -> None:
    example = REPO / "totpd.toml.example"
    config = parse(example.read_text())
    assert config.server.public_url.startswith("https://")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nlisten = 8080", "server.listen: expected a string"),
        ('[server]\nlisten = "localhost"', "server.listen: 'localhost' is not host:port"),
        ('[server]\nlisten = "1.2.3.4:99999"', "server.listen"),
        ('[server]\npublic_url = "ftp://x"', "server.public_url: 'ftp://x' is not an http(s) URL"),
        ('[server]\npublic_url = "https://x/?a=1"', "server.public_url: must not carry a query"),
        ("[server]\nlisen = 1", "server.lisen: unknown key"),
        ("[servre]\n", "[servre]: unknown section"),
        ("[call]\nmax_pin_attempts = true", "call.max_pin_attempts: expected int, got bool"),
        ('[call]\nmax_pin_attempts = "3"', "call.max_pin_attempts: expected int, got str"),
        ("[call]\nmax_pin_attempts = 0", "call.max_pin_attempts: 0 is out of range 1..10"),
        ("[pins]\nmin_length = 3", "pins.min_length: 3 is out of range 4..20"),
        ('[lockout]\nglobal = "lots"', "lockout.global: 'lots' is not a limit"),
        ('[lockout]\nstorage = "mysql://x"', "lockout.storage"),
        ('[admin]\nlisten = "0.0.0.0:8081"', "admin.listen: 0.0.0.0:8081 is not a loopback"),
        ("server = 1", "[server]: expected a table"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_mistakes_name_their_key(text: str, expected: str) -> None:
    assert expected in error(text)


def test_admin_may_listen_remotely_only_when_asked() -> None:
    config = parse('[admin]\nlisten = "0.0.0.0:8081"\nallow_remote = true')
    assert config.admin.listen == Listen("0.0.0.0", 8081)


def test_ipv6_listen() -> None:
    assert parse('[server]\nlisten = "[::1]:8080"').server.listen == Listen("::1", 8080)


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path)
    return str(caught.value)


def test_world_readable_secret_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "signature-secret"
    secret.write_text("s" * 32)
    secret.chmod(0o644)
    path = tmp_path / "totpd.toml"
    path.write_text(f'[vonage]\nsignature_secret_file = "{secret}"')
    assert load_error(path) == (
        f"{path}: vonage.signature_secret_file: {secret} is readable by others; chmod 600 it"
    )
    secret.chmod(0o600)
    assert load(path).vonage.signature_secret_file == str(secret)


def test_missing_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "totpd.toml"
    path.write_text(f'[vonage]\nsignature_secret_file = "{tmp_path / "nope"}"')
    assert "cannot read" in load_error(path)


def test_parsing_opens_no_file(tmp_path: Path) -> None:
    # `parse` is text in, values out: the files a config names are checked by `load`.
    text = f'[vonage]\nsignature_secret_file = "{tmp_path / "nope"}"'
    assert parse(text).vonage.signature_secret_file == str(tmp_path / "nope")


def test_unreadable_or_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(binary)


def test_no_config_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOTPD_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="--config FILE or set TOTPD_CONFIG"):
        load(None)
