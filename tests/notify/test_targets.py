"""Where notifications go: the URL file and the credential, checked like every secret file."""

from pathlib import Path

import pytest

from tests.helpers import run_totpd, write_config
from tests.notify.servers import TOKEN, TOPIC, notify_section, write_urls
from totpd import config as config_module
from totpd.errors import ConfigError
from totpd.notify import CREDENTIAL, load_targets

NTFY = f"ntfy://{TOKEN}@ntfy.example.org/{TOPIC}"
MAIL = "mailto://alerts:hunter2-mail-password@example.org?to=owner@example.org"


def check_config(tmp_path: Path, *lines: str, mode: int = 0o600) -> tuple[int, str]:
    """`totpd check-config` on a config whose URL file holds `lines`: (exit status, output)."""
    urls = write_urls(tmp_path, *lines, mode=mode)
    done = run_totpd(write_config(tmp_path, notify_section(urls)), "check-config")
    return done.returncode, done.stdout + done.stderr


def assert_no_secret(output: str) -> None:
    for secret in (TOKEN, TOPIC, "hunter2-mail-password", "ntfy.example.org"):
        assert secret not in output


def test_check_config_counts_the_targets_and_names_only_their_services(tmp_path: Path) -> None:
    status, output = check_config(
        tmp_path, "# where totpd tells me", "", NTFY, "   ", f"  {MAIL}  ", "#ntfy://old/one"
    )
    assert status == 0, output
    assert "2 notification targets (ntfy, E-Mail))" in output
    assert_no_secret(output)


def test_without_a_notify_section_notifications_are_off(tmp_path: Path) -> None:
    done = run_totpd(write_config(tmp_path), "check-config")
    assert done.returncode == 0, done.stderr
    assert "notifications off)" in done.stdout


def test_a_world_readable_url_file_is_refused(tmp_path: Path) -> None:
    status, output = check_config(tmp_path, NTFY, mode=0o644)
    assert status == 1
    assert "notify.urls_file" in output
    assert "is readable by others; chmod 600 it" in output
    assert_no_secret(output)


def test_a_group_readable_url_file_is_refused(tmp_path: Path) -> None:
    status, output = check_config(tmp_path, NTFY, mode=0o640)
    assert status == 1
    assert "chmod 600" in output


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (f"ntfyy://{TOKEN}@ntfy.example.org/{TOPIC}", "not a ntfyy:// URL that Apprise can use"),
        (f"{TOKEN}", "not a URL (expected scheme://...)"),
        (f"{NTFY} {MAIL}", "one URL per line"),
        ("mailto://", "not a mailto:// URL that Apprise can use"),
    ],
)
def test_a_bad_url_is_refused_by_line_number_without_showing_it(
    tmp_path: Path, line: str, reason: str
) -> None:
    status, output = check_config(tmp_path, "# first", NTFY, line)
    assert status == 1
    assert f"line 3: {reason}" in output
    assert_no_secret(output)


def test_a_url_file_without_urls_is_refused(tmp_path: Path) -> None:
    status, output = check_config(tmp_path, "# nothing yet", "")
    assert status == 1
    assert "holds no URL" in output


def test_a_missing_url_file_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, notify_section(tmp_path / "absent.urls"))
    with pytest.raises(ConfigError, match=r"notify.urls_file: cannot read .*absent.urls"):
        load_targets(config_module.load(path))


def test_the_systemd_credential_replaces_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    write_urls(credentials, NTFY, MAIL, mode=0o400).rename(credentials / CREDENTIAL)
    # The configured file does not even exist: the credential wins without looking at it.
    config = config_module.load(write_config(tmp_path, notify_section(tmp_path / "absent.urls")))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    targets = load_targets(config)
    assert [str(t) for t in targets] == ["target 1 (ntfy)", "target 2 (E-Mail)"]
    assert_no_secret(repr(targets))


def test_a_bad_credential_names_the_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    write_urls(credentials, "nonsense", mode=0o400).rename(credentials / CREDENTIAL)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    with pytest.raises(ConfigError, match=f"credential {CREDENTIAL}: .* line 1: not a URL"):
        load_targets(config_module.load(write_config(tmp_path)))


def test_the_shipped_examples_show_the_notify_section() -> None:
    root = Path(__file__).resolve().parent.parent.parent
    for example in (root / "totpd.toml.example", root / "deploy" / "totpd.toml"):
        text = example.read_text()
        assert "\n# [notify]\n" in text, example
        enabled = text.replace("# [notify]", "[notify]").replace("# urls_file", "urls_file")
        assert config_module.parse(enabled).notify.urls_file == "/etc/totpd/notify.urls"
