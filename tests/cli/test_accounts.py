"""`totpd account ...` as a sysadmin uses it: add (from stdin, a QR image, or --generate),
import, list, code and remove.

Separate processes, secrets on stdin or in files only; failures leave the store as it was.
"""

from pathlib import Path

import segno
from PIL import Image

from tests.helpers import GITHUB_SEED, codes_near_now, run_totpd
from totpd import config as config_module
from totpd.enrol import parse_image

SECRET = "HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ"
TWO_ACCOUNTS = (
    "otpauth-migration://offline?data="
    "CkMKFD3GyqSCSm0oh2eyMx4gtDFmy4XZEhxBQ01FIENvOmpvaG4uZG9lQGV4YW1wbGUuY29tGgdBQ01FIENvIAEoATAC"
    "CjUKCkhlbGxvId6tvu8SGEV4YW1wbGU6YWxpY2VAZ29vZ2xlLmNvbRoHRXhhbXBsZSABKAEwAhABGAEgACjn4Pv4Ag=="
)


def state_files(config_path: Path) -> dict[str, bytes]:
    """Every file of the state directory (to prove a failed command changed nothing)."""
    state = config_module.load(config_path).paths.state_dir
    if not state.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(state.iterdir()) if p.is_file()}


def current_code(config_path: Path, name: str) -> str:
    """The code `totpd account code` prints."""
    result = run_totpd(config_path, "account", "code", name)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[0]


def test_add_from_a_qr_screenshot(config_path: Path, tmp_path: Path) -> None:
    image = tmp_path / "github.png"
    uri = f"otpauth://totp/GitHub:alice?secret={SECRET}&issuer=GitHub"
    segno.make(uri).save(str(image), scale=6)
    result = run_totpd(config_path, "account", "add", "gh", "--qr", str(image))
    assert result.returncode == 0, result.stderr
    assert "enrolled gh ('GitHub'" in result.stdout
    assert current_code(config_path, "gh") in codes_near_now(SECRET)


def test_add_from_a_qr_with_its_own_label(config_path: Path, tmp_path: Path) -> None:
    image = tmp_path / "bank.png"
    segno.make(f"otpauth://totp/Bank:me?secret={SECRET}").save(str(image), scale=6)
    run_totpd(config_path, "account", "add", "bank", "--label", "My bank", "--qr", str(image))
    listed = run_totpd(config_path, "account", "list").stdout
    assert "bank\tMy bank\ttotp" in listed


def test_add_from_an_image_without_a_qr_code_changes_nothing(
    config_path: Path, tmp_path: Path
) -> None:
    run_totpd(config_path, "account", "add", "first", "--label", "First", stdin=SECRET)
    before = state_files(config_path)
    blank = tmp_path / "blank.png"
    Image.linear_gradient("L").save(blank)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    for image, reason in ((blank, "no QR code found"), (broken, "not an image totpd can read")):
        result = run_totpd(config_path, "account", "add", "gh", "--qr", str(image))
        assert result.returncode == 1
        assert result.stderr.startswith(f"totpd: error: {image}: {reason}")
        assert "Traceback" not in result.stderr
        assert state_files(config_path) == before


def test_add_refuses_an_export_with_several_accounts(config_path: Path, tmp_path: Path) -> None:
    image = tmp_path / "export.png"
    segno.make(TWO_ACCOUNTS).save(str(image), scale=4)
    result = run_totpd(config_path, "account", "add", "gh", "--qr", str(image))
    assert result.returncode == 1
    assert "2 accounts; use `totpd account import --qr`" in result.stderr


def test_import_a_google_authenticator_export_from_stdin(config_path: Path) -> None:
    dry = run_totpd(config_path, "account", "import", "--dry-run", stdin=TWO_ACCOUNTS)
    assert dry.stdout.splitlines() == ["acme-co\tACME Co\ttotp\t6", "example\tExample\ttotp\t6"]
    assert run_totpd(config_path, "account", "list").stdout == ""  # dry run: nothing enrolled
    result = run_totpd(config_path, "account", "import", stdin=TWO_ACCOUNTS)
    assert result.returncode == 0, result.stderr
    assert current_code(config_path, "acme-co") in codes_near_now(SECRET)
    listed = run_totpd(config_path, "account", "list").stdout
    assert "example\tExample\ttotp\tSHA1\t6\t30s" in listed


def test_import_from_qr_images(config_path: Path, tmp_path: Path) -> None:
    image = tmp_path / "export.png"
    segno.make(TWO_ACCOUNTS).save(str(image), scale=4)
    result = run_totpd(config_path, "account", "import", "--qr", str(image))
    assert result.returncode == 0, result.stderr
    assert "enrolled acme-co" in result.stdout
    assert "enrolled example" in result.stdout


def test_import_with_a_taken_name_enrols_none(config_path: Path) -> None:
    run_totpd(config_path, "account", "add", "example", "--label", "Mine", stdin=SECRET)
    before = state_files(config_path)
    result = run_totpd(config_path, "account", "import", stdin=TWO_ACCOUNTS)
    assert result.returncode == 1
    assert "already enrolled: example" in result.stderr
    assert state_files(config_path) == before  # neither account, nor any seed, went in
    assert "acme-co" not in run_totpd(config_path, "account", "list").stdout


def test_import_of_a_tampered_export_is_a_clear_error(config_path: Path) -> None:
    result = run_totpd(config_path, "account", "import", stdin=TWO_ACCOUNTS[:-30])
    assert result.returncode == 1
    assert "Google Authenticator export: malformed data" in result.stderr
    assert state_files(config_path) == {}


def test_generate_writes_a_qr_that_gives_the_codes_totpd_reads(
    config_path: Path, tmp_path: Path
) -> None:
    image = tmp_path / "new.png"
    result = run_totpd(
        config_path,
        *("account", "add", "acme", "--generate", "--issuer", "Acme", "--qr-out", str(image)),
    )
    assert result.returncode == 0, result.stderr
    assert "otpauth://" not in result.stdout  # not a terminal: the secret goes to the file only
    (scanned,) = parse_image(image)
    assert scanned.account.issuer == "Acme"
    assert current_code(config_path, "acme") in codes_near_now(scanned.secret)


def test_generate_without_a_terminal_or_a_file_is_refused(config_path: Path) -> None:
    result = run_totpd(config_path, "account", "add", "acme", "--generate")
    assert result.returncode == 1
    assert "--qr-out" in result.stderr
    assert run_totpd(config_path, "account", "list").stdout == ""


def test_generate_for_a_taken_name_writes_no_qr(config_path: Path, tmp_path: Path) -> None:
    run_totpd(config_path, "account", "add", "acme", "--label", "Acme", stdin=SECRET)
    image = tmp_path / "new.svg"
    result = run_totpd(config_path, "account", "add", "acme", "--generate", "--qr-out", str(image))
    assert result.returncode == 1
    assert "already enrolled: acme" in result.stderr
    assert not image.exists()
    assert current_code(config_path, "acme") in codes_near_now(SECRET)  # the old seed is kept


def test_no_failure_prints_the_secret_it_was_given(config_path: Path, tmp_path: Path) -> None:
    run_totpd(config_path, "account", "add", "example", "--label", "Mine", stdin=SECRET)
    attempts = [
        ("account", "import", TWO_ACCOUNTS),  # a taken name
        ("account", "add", "x", f"otpauth://totp/X?secret={SECRET}&algorithm=MD5"),
        ("account", "add", "x", f"otpauth://totp/X?secret={SECRET}&period=0"),
        ("account", "add", "x", SECRET[:-3] + "!!!"),
        ("account", "add", "Bad Name", SECRET),
    ]
    for *args, stdin in attempts:
        result = run_totpd(config_path, *args, stdin=stdin)
        assert result.returncode != 0, args
        output = result.stdout + result.stderr
        for secret in (SECRET, SECRET[:-3], "JBSWY3DPEHPK3PXP"):
            assert secret not in output, (args, output)


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
