"""totpd without its extras, as on 32-bit ARM where PyPI has no wheels for them: the daemon on
asyncio's loop and the standard library's json (no `speedups`), and a clear word instead of QR
decoding (no `qr`). The extras are blocked from import for real: in a child process, or in
sys.modules for the in-process admin page.
"""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from aiohttp import FormData
from pytest_aiohttp import AiohttpClient

from tests.admin.helpers import ADMIN_PASSWORD, AdminClient, Clock, qr_png
from tests.admin.test_http import csrf_of, sign_in
from tests.enrol import backup_writers
from tests.helpers import (
    GITHUB_SEED,
    PIN,
    SIGNATURE_SECRET,
    codes_near_now,
    free_port,
    wait_for_port,
    write_config,
)
from totpd import speedups, vonage
from totpd.admin import create_admin_app
from totpd.admin.password import AdminPassword
from totpd.errors import WebhookRejected
from totpd.services import Services

NOT_INSTALLED = "QR decoding is not installed: paste the otpauth link instead"


def totpd_without(blocked: tuple[str, ...], config: Path, *args: str) -> list[str]:
    """The command line of `totpd` in a Python where the `blocked` modules cannot be imported."""
    blocker = (
        f"import sys; sys.modules.update(dict.fromkeys({blocked!r}));"
        " from totpd.cli import main; sys.exit(main())"
    )
    return [sys.executable, "-c", blocker, "--config", str(config), *args]


def run(command: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_daemon_answers_a_call_on_asyncio_and_stdlib_json(tmp_path: Path) -> None:
    blocked = ("uvloop", "orjson")
    port = free_port()
    config = write_config(tmp_path, listen=f"127.0.0.1:{port}", metrics=f"127.0.0.1:{free_port()}")
    enrolled = run(totpd_without(blocked, config, "account", "add", "github"), GITHUB_SEED)
    assert enrolled.returncode == 0, enrolled.stderr
    assert run(totpd_without(blocked, config, "user", "add", "ada", "--accounts", "github"), PIN)
    daemon = subprocess.Popen(
        totpd_without(blocked, config, "serve"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port)
        # The libraries' own shared objects are not loaded: not uvloop's loop, not orjson.
        mapped = Path(f"/proc/{daemon.pid}/maps").read_text()
        assert "uvloop" not in mapped
        assert "orjson" not in mapped
        call = run(totpd_without(blocked, config, "call", "--press", PIN, "--press", ""))
    finally:
        daemon.terminate()
        _, stderr = daemon.communicate(timeout=30)
    assert call.returncode == 0, call.stderr
    spoken = [line for line in call.stdout.splitlines() if "code is:" in line]
    assert spoken, call.stdout
    digits = spoken[0].split("code is: ")[1].split(".")[0].replace(" ", "")
    assert digits in codes_near_now(GITHUB_SEED)
    assert daemon.returncode == 0, stderr
    assert SIGNATURE_SECRET not in call.stdout + stderr


@pytest.fixture
def stdlib_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speedups, "HAVE_ORJSON", False)


@pytest.mark.usefixtures("stdlib_json")
@pytest.mark.parametrize(
    "body",
    [b"{", b'{"a": NaN}', b'{"a": Infinity}', b"[" * 100_000, b"\xff{}", b'{"a": 1} x'],
)
def test_stdlib_json_refuses_what_orjson_refuses(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError is what orjson raises
        orjson.loads(body)
    with pytest.raises(WebhookRejected, match="malformed_json"):
        vonage.parse_json(body)


@pytest.mark.usefixtures("stdlib_json")
def test_stdlib_json_writes_the_bytes_orjson_writes() -> None:
    document = [{"action": "talk", "text": "Ihr Code für Ünïcode: 1 2 3", "bargeIn": True}]
    assert speedups.dumps(document) == orjson.dumps(document)
    assert speedups.loads(orjson.dumps(document)) == document


@pytest.mark.parametrize(
    "command", [["account", "add", "github", "--qr"], ["account", "import", "--qr"]]
)
def test_the_cli_says_qr_decoding_is_not_installed(tmp_path: Path, command: list[str]) -> None:
    config = write_config(tmp_path)
    image = qr_png(tmp_path / "code.png", f"otpauth://totp/GitHub:ada?secret={GITHUB_SEED}")
    done = run(totpd_without(("zxingcpp", "PIL"), config, *command, str(image)))
    assert (done.returncode, done.stderr) == (1, f"totpd: error: {NOT_INSTALLED}\n")
    assert not (tmp_path / "state" / "vault.bin").exists(), "nothing was stored"


def test_the_cli_says_reading_ente_backups_is_not_installed(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    backup = tmp_path / "ente-auth-export.txt"
    backup.write_bytes(backup_writers.ente(backup_writers.SAMPLES, backup_writers.PASSPHRASE))
    command = totpd_without(("nacl",), config, "account", "import", "--file", str(backup))
    done = run(command, backup_writers.PASSPHRASE + "\n")
    assert done.returncode == 1
    assert "not installed (PyNaCl, the `ente` extra)" in done.stderr
    assert "plain export" in done.stderr
    assert not (tmp_path / "state" / "vault.bin").exists(), "nothing was stored"
    # The plain export needs nothing more.
    plain = tmp_path / "ente-plain.txt"
    plain.write_bytes(backup_writers.uri_list(backup_writers.SAMPLES))
    done = run(totpd_without(("nacl",), config, "account", "import", "--file", str(plain)))
    assert done.returncode == 0, done.stderr


@pytest.fixture
async def admin(aiohttp_client: AiohttpClient, services: Services) -> AdminClient:
    """A client of the admin page (password set), not yet signed in."""
    AdminPassword(services.config.paths.state_dir, services.config.pins).set(ADMIN_PASSWORD)
    return await aiohttp_client(create_admin_app(services, clock=Clock()))


async def test_the_admin_page_says_qr_decoding_is_not_installed(
    admin: AdminClient, services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = qr_png(tmp_path / "code.png", f"otpauth://totp/GitHub:ada?secret={GITHUB_SEED}")
    for module in ("zxingcpp", "PIL", "totpd.enrol.qr"):
        monkeypatch.setitem(sys.modules, module, None)
    await sign_in(admin)
    before = services.roster.current()
    form = FormData()
    form.add_field("csrf", csrf_of(await (await admin.get("/")).text()))
    form.add_field("image", image.read_bytes(), filename="code.png")
    response = await admin.post("/enrol/image", data=form)
    assert f"Not enrolled: {NOT_INSTALLED}." in await response.text()
    assert services.roster.current() == before
