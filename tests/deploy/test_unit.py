"""deploy/: the hardened unit judged by systemd's own tools, the sysusers/tmpfiles snippets
applied to a scratch root, and install.sh staging a whole install with real sealed credentials.
"""

import ipaddress
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DEPLOY, unit_directives, unit_values
from totpd import config as config_module
from totpd.config import Config
from totpd.notify import CREDENTIAL as NOTIFY_CREDENTIAL
from totpd.secrets import SIGNATURE_CREDENTIAL
from totpd.secrets.key import sealed_key_path

SERVICE = DEPLOY / "totpd.service"
NOTIFY_DROP_IN = DEPLOY / "dropins" / "notify.conf"
MAX_EXPOSURE = 1.5
_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def run(*command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; never raises on a non-zero exit."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        command, capture_output=True, text=True, timeout=120, check=False, **kwargs
    )


def exposure(unit: Path) -> float:
    """`systemd-analyze security --offline=true` exposure score of a unit file."""
    done = run("systemd-analyze", "security", "--offline=true", "--no-pager", str(unit))
    found = _EXPOSURE.search(done.stdout)
    assert found, f"no exposure score in systemd-analyze output:\n{done.stdout}{done.stderr}"
    return float(found.group(1))


def test_exposure_score_is_at_most_one_and_a_half(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shutil.copy(SERVICE, tmp_path / "totpd.service")  # the unit alone, no drop-ins
    score = exposure(tmp_path / "totpd.service")
    with capsys.disabled():
        print(f"\n[systemd-analyze security --offline=true] totpd.service exposure: {score}")
    assert score <= MAX_EXPOSURE


def test_the_private_network_drop_in_lowers_the_score_further(tmp_path: Path) -> None:
    # systemd-analyze reads drop-ins from <unit>.d/ next to the unit file.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(SERVICE, alone / "totpd.service")
    shutil.copy(SERVICE, tmp_path / "totpd.service")
    (tmp_path / "totpd.service.d").mkdir()
    shutil.copy(DEPLOY / "dropins" / "private-network.conf", tmp_path / "totpd.service.d")
    with_drop_in = exposure(tmp_path / "totpd.service")
    assert with_drop_in < exposure(alone / "totpd.service")
    assert with_drop_in <= 0.6


def test_the_notify_drop_in_opens_egress_to_its_addresses_only(tmp_path: Path) -> None:
    drop_in = NOTIFY_DROP_IN
    active = unit_directives(drop_in)
    assert {(section, key) for section, key, _ in active} == {("Service", "IPAddressAllow")}
    for _, _, value in active:
        assert ipaddress.ip_network(value).prefixlen > 0, "an address or a prefix, never any"
    # The optional credential line names the credential the code reads, where totpd-admin
    # keeps the others; the unit itself never loads it, so it starts without one.
    line = re.search(r"^#LoadCredentialEncrypted=(\S+)$", drop_in.read_text(), re.MULTILINE)
    assert line, "the drop-in shows the LoadCredentialEncrypted= line, commented out"
    assert (
        line[1]
        == f"{NOTIFY_CREDENTIAL}:{sealed_key_path(Config()).parent}/{NOTIFY_CREDENTIAL}.cred"
    )
    assert NOTIFY_CREDENTIAL not in SERVICE.read_text()

    # With it (the credential line uncommented too), systemd accepts every line...
    totpd = Path(sys.executable).with_name("totpd")
    unit = tmp_path / "totpd.service"
    unit.write_text(SERVICE.read_text().replace("/opt/totpd/venv/bin/totpd", str(totpd)))
    (tmp_path / "totpd.service.d").mkdir()
    enabled = drop_in.read_text().replace("#LoadCredentialEncrypted=", "LoadCredentialEncrypted=")
    (tmp_path / "totpd.service.d" / "notify.conf").write_text(enabled)
    done = run("systemd-analyze", "verify", str(unit))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr
    # ...and the score moves by systemd's one item for a non-localhost allow list, no more.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(SERVICE, alone / "totpd.service")
    assert exposure(alone / "totpd.service") < exposure(unit) <= MAX_EXPOSURE


def test_an_unhardened_unit_scores_worse(tmp_path: Path) -> None:
    # The score parser and the threshold mean something: without the sandbox lines the same
    # service is far more exposed.
    keep = ("Type", "ExecStart", "User", "Group", "Description")
    plain = tmp_path / "totpd.service"
    plain.write_text(
        "[Unit]\nDescription=totpd\n[Service]\n"
        + "".join(
            f"{k}={v}\n" for s, k, v in unit_directives(SERVICE) if k in keep and s == "Service"
        )
    )
    assert exposure(plain) > 5.0


def test_the_units_verify_with_systemd(tmp_path: Path) -> None:
    totpd = Path(sys.executable).with_name("totpd")
    assert totpd.exists(), "the totpd entry point is installed in the venv"
    units = []
    for name in ("totpd.service", "totpd.socket", "totpd-metrics.socket"):
        text = (DEPLOY / name).read_text().replace("/opt/totpd/venv/bin/totpd", str(totpd))
        (tmp_path / name).write_text(text)
        units.append(str(tmp_path / name))
    done = run("systemd-analyze", "verify", *units)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_the_service_is_a_notify_daemon_with_a_watchdog() -> None:
    assert unit_values(SERVICE, "Type") == ["notify"]
    assert unit_values(SERVICE, "NotifyAccess") == ["main"]
    watchdog = unit_values(SERVICE, "WatchdogSec")
    assert len(watchdog) == 1
    assert 10 <= int(watchdog[0].removesuffix("s")) <= 120
    assert unit_values(SERVICE, "ExecStart") == [
        "/opt/totpd/venv/bin/totpd --config /etc/totpd/totpd.toml serve"
    ]
    assert unit_values(SERVICE, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_values(SERVICE, "StateDirectory") == ["totpd"]
    assert unit_values(SERVICE, "UMask") == ["0077"]


def test_the_credentials_are_the_ones_the_code_reads() -> None:
    credentials = dict(v.split(":", 1) for v in unit_values(SERVICE, "LoadCredentialEncrypted"))
    defaults = Config()
    assert set(credentials) == {defaults.secrets.key_credential, SIGNATURE_CREDENTIAL}
    # Where the admin CLI looks for the sealed vault key is where the unit loads it from.
    assert credentials[defaults.secrets.key_credential] == str(sealed_key_path(defaults))
    assert credentials[SIGNATURE_CREDENTIAL] == (
        f"{sealed_key_path(defaults).parent}/{SIGNATURE_CREDENTIAL}.cred"
    )


def test_totpd_admin_loads_the_same_credentials_as_the_unit() -> None:
    # totpd-admin runs admin commands in a transient unit; its credentials must not drift.
    # It also loads the notify drop-in's, when sealed, so check-config reads the URLs.
    script = (DEPLOY / "totpd-admin").read_text()
    names = re.search(r"for name in ([\w -]+); do", script)
    assert names, "totpd-admin lists its credentials in a for loop"
    credstore = re.search(r"^CREDSTORE=(\S+)$", script, re.MULTILINE)
    assert credstore
    admin = {name: f"{credstore[1]}/{name}.cred" for name in names[1].split()}
    unit = dict(v.split(":", 1) for v in unit_values(SERVICE, "LoadCredentialEncrypted"))
    notify = re.search(r"^#LoadCredentialEncrypted=(\S+)$", NOTIFY_DROP_IN.read_text(), re.M)
    assert notify, "the notify drop-in's optional credential"
    assert admin == {**unit, **dict([notify[1].split(":", 1)])}
    for key in ("User", "UMask", "StateDirectory"):
        assert f"-p {key}={unit_values(SERVICE, key)[0]}" in script, key


def test_the_sandbox_keeps_every_required_restriction() -> None:
    required = {
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallArchitectures": "native",
        "MemoryDenyWriteExecute": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "ProtectProc": "invisible",
        "ProcSubset": "pid",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "PrivateUsers": "yes",
        "DevicePolicy": "closed",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
    }
    for key, value in required.items():
        assert unit_values(SERVICE, key) == [value], key
    assert unit_values(SERVICE, "SystemCallFilter") == [
        "@system-service",
        "~@privileged @resources",
        "setpriority",
    ]
    assert unit_values(SERVICE, "IPAddressDeny") == ["any"]
    assert unit_values(SERVICE, "IPAddressAllow") == ["localhost"]


def test_socket_units_name_their_sockets_for_the_daemon() -> None:
    webhooks, metrics = DEPLOY / "totpd.socket", DEPLOY / "totpd-metrics.socket"
    defaults = Config()
    assert unit_values(webhooks, "ListenStream") == [str(defaults.server.listen)]
    assert unit_values(webhooks, "FileDescriptorName") == ["webhooks"]
    assert unit_values(metrics, "ListenStream") == [str(defaults.metrics.listen)]
    assert unit_values(metrics, "FileDescriptorName") == ["metrics"]
    for unit in (webhooks, metrics):
        assert unit_values(unit, "Service") == ["totpd.service"]


def passwd_ids(root: Path, name: str) -> tuple[int, int]:
    """uid and gid of `name` in root/etc/passwd."""
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"no user {name} in {root}/etc/passwd")


def mode_and_owner(path: Path) -> tuple[int, int, int]:
    """Permission bits, uid and gid of `path`."""
    st = path.stat()
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


@pytest.mark.root  # chown, sealing with the host key
def test_sysusers_and_tmpfiles_create_the_user_and_private_directories(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    done = run("systemd-sysusers", f"--root={root}", str(DEPLOY / "sysusers.d" / "totpd.conf"))
    assert done.returncode == 0, done.stderr
    uid, gid = passwd_ids(root, "totpd")
    assert uid != 0
    entry = next(
        line for line in (root / "etc/passwd").read_text().splitlines() if line.startswith("totpd:")
    )
    assert entry.endswith(":/var/lib/totpd:/usr/sbin/nologin")
    (root / "var/lib/totpd").mkdir(parents=True)
    stray = root / "var/lib/totpd/vault.bin"
    stray.write_bytes(b"written by root by mistake")
    done = run(
        "systemd-tmpfiles",
        f"--root={root}",
        "--create",
        str(DEPLOY / "tmpfiles.d" / "totpd.conf"),
    )
    assert done.returncode == 0, done.stderr
    assert mode_and_owner(root / "etc/totpd") == (0o750, 0, gid)
    assert mode_and_owner(root / "etc/credstore.encrypted") == (0o700, 0, 0)
    assert mode_and_owner(root / "var/lib/totpd") == (0o700, uid, gid)
    assert mode_and_owner(stray)[1:] == (uid, gid), "files an admin left as root are re-owned"
    assert mode_and_owner(root / "var/backups/totpd") == (0o700, uid, gid)


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: scripts/setup installs it"
    done = run(shellcheck, str(DEPLOY / "install.sh"), str(DEPLOY / "totpd-admin"))
    assert done.returncode == 0, done.stdout


def decrypt(path: Path, name: str) -> bytes:
    """Unseal a credential file with systemd-creds, as systemd does for the unit."""
    done = subprocess.run(
        ["systemd-creds", "decrypt", f"--name={name}", str(path), "-"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def install(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run deploy/install.sh staged under `root`, without the venv (no network)."""
    return run(
        str(DEPLOY / "install.sh"),
        "--no-venv",
        *args,
        input=stdin,
        env={**os.environ, "TOTPD_INSTALL_ROOT": str(root)},
    )


@pytest.mark.root  # chown, sealing with the host key
def test_install_stages_a_complete_install_with_sealed_credentials(tmp_path: Path) -> None:
    root = tmp_path / "root"
    secret_file = tmp_path / "signature-secret"
    secret_file.write_text("sig-0123456789abcdef\n")
    done = install(root, "--signature-secret-file", str(secret_file))
    assert done.returncode == 0, done.stdout + done.stderr
    uid, gid = passwd_ids(root, "totpd")

    credstore = root / "etc/credstore.encrypted"
    vault_key = decrypt(credstore / "totpd-vault-key.cred", "totpd-vault-key")
    assert len(vault_key) == 32
    assert decrypt(credstore / f"{SIGNATURE_CREDENTIAL}.cred", SIGNATURE_CREDENTIAL) == (
        b"sig-0123456789abcdef"
    )
    for sealed in credstore.iterdir():
        assert b"sig-0123456789abcdef" not in sealed.read_bytes()
        assert mode_and_owner(sealed) == (0o600, 0, 0)

    config_file = root / "etc/totpd/totpd.toml"
    assert mode_and_owner(config_file) == (0o640, 0, gid)
    installed = config_module.load(config_file)
    assert installed.paths.state_dir == Path("/var/lib/totpd")
    assert installed.secrets.key_credential == "totpd-vault-key"
    assert mode_and_owner(root / "var/lib/totpd") == (0o700, uid, gid)

    units = root / "etc/systemd/system"
    assert (units / "totpd.service").read_text() == SERVICE.read_text()
    wanted = units / "multi-user.target.wants" / "totpd.service"
    assert wanted.readlink() == Path("/etc/systemd/system/totpd.service")
    assert mode_and_owner(root / "usr/local/sbin/totpd-admin")[0] == 0o755
    # The unit's Documentation= pages are where it says, on the installed host.
    links = re.findall(r"^Documentation=(.+)$", SERVICE.read_text(), re.MULTILINE)
    pages = [u.removeprefix("file://") for v in links for u in v.split() if u.startswith("file:")]
    assert "/opt/totpd/docs/deploying.md" in pages
    for page in pages:
        assert (root / page.lstrip("/")).is_file(), page

    # Running it again (an upgrade) keeps the config and every credential as they were.
    config_file.write_text(config_file.read_text() + "\n# edited by the admin\n")
    before = {p.name: p.read_bytes() for p in credstore.iterdir()}
    again = install(root)
    assert again.returncode == 0, again.stderr
    assert config_file.read_text().endswith("# edited by the admin\n")
    assert {p.name: p.read_bytes() for p in credstore.iterdir()} == before


@pytest.mark.root  # chown, sealing with the host key
def test_install_reads_the_signature_secret_from_a_pipe(tmp_path: Path) -> None:
    done = install(tmp_path / "root", stdin="piped-secret-42\n")
    assert done.returncode == 0, done.stderr
    sealed = tmp_path / "root/etc/credstore.encrypted" / f"{SIGNATURE_CREDENTIAL}.cred"
    assert decrypt(sealed, SIGNATURE_CREDENTIAL) == b"piped-secret-42"


@pytest.mark.root  # chown, sealing with the host key
def test_install_never_replaces_the_key_of_an_existing_vault(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "var/lib/totpd").mkdir(parents=True)
    (root / "var/lib/totpd/vault.bin").write_bytes(b"an existing vault")
    done = install(root, stdin="secret\n")
    assert done.returncode != 0
    assert "restore the sealed key" in done.stderr
    assert not (root / "etc/credstore.encrypted/totpd-vault-key.cred").exists()


@pytest.mark.root  # chown, sealing with the host key
def test_install_without_a_signature_secret_fails_clearly(tmp_path: Path) -> None:
    done = install(tmp_path / "root", stdin="")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "install.sh: no Vonage signature secret given (--signature-secret-file FILE)"
    )
