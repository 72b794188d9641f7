"""Config loading: every mistake is caught and names its key."""

from pathlib import Path

import pytest

from tests.helpers import REPO
from totpd.config import Listen, UnixSocket, load, parse
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
    assert (config.pins.min_length, config.pins.generated_length) == (8, 6)
    assert config.lockout.global_listed == config.lockout.global_ == "10 per day"


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


@pytest.mark.parametrize(
    "text",
    [
        "[servre]\n",  # an unknown section
        "[server]\nlisen = 1",  # an unknown key
        '[call]\nmax_pin_attempts = "3"',  # a wrong type
        "server = 1",  # a section that is no table
        "[call]\nmax_pin_attempts = 0",  # out of range
        "[server\n",  # not TOML
    ],
)
def test_every_mistake_in_a_file_names_the_file_first(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        parse(text, source=path)
    assert str(caught.value).startswith(f"{path}: ")


def test_admin_may_listen_remotely_only_when_asked() -> None:
    config = parse('[admin]\nlisten = "0.0.0.0:8081"\nallow_remote = true')
    assert config.admin.listen == Listen("0.0.0.0", 8081)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("::ffff:127.0.0.1", True),
        ("127.example.org", False),
        ("localhost.evil", False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    assert Listen(host, 8081).is_loopback is loopback


@pytest.mark.parametrize("host", ["127.example.org", "localhost.evil", "127.0.0.1.nip.io"])
def test_a_name_that_looks_like_loopback_is_refused_for_the_admin_page(host: str) -> None:
    assert "is not a loopback address" in error(f'[admin]\nlisten = "{host}:8081"')


def test_the_admin_page_may_listen_on_a_unix_socket() -> None:
    config = parse('[admin]\nlisten = "unix:/run/totpd/admin.sock"')
    assert config.admin.listen == UnixSocket(Path("/run/totpd/admin.sock"))
    assert str(config.admin.listen) == "unix:/run/totpd/admin.sock"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[admin]\nlisten = "unix:admin.sock"', "admin.listen: 'unix:admin.sock': the socket"),
        ('[admin]\nlisten = "unix:"', "admin.listen: 'unix:': the socket needs an absolute path"),
        (f'[admin]\nlisten = "unix:/{"x" * 120}.sock"', "longer than 107 bytes"),
        ('[server]\nlisten = "unix:/run/totpd/webhooks.sock"', "server.listen: 'unix:/run"),
        ('[metrics]\nlisten = "unix:/run/totpd/metrics.sock"', "metrics.listen: 'unix:/run"),
    ],
)
def test_a_unix_socket_must_be_an_absolute_path_and_only_for_the_admin_page(
    text: str, expected: str
) -> None:
    assert expected in error(text)


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


def test_a_language_without_a_catalogue_is_refused() -> None:
    # Vonage would refuse every NCCO in it: check-config says so instead of the first call.
    assert error('[call]\nlanguage = "de_DE"').startswith(
        "call.language: no prompts in language 'de_DE'; totpd speaks de-DE, en-GB, en-US,"
    )


def test_the_language_is_read_in_any_case() -> None:
    assert parse('[call]\nlanguage = "de-de"').call.language == "de-DE"
