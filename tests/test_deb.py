"""The Debian packages of `make deb`: their metadata and files, then installed with apt as the
docs say, into throwaway Debian 12 chroots: amd64 natively, arm64 through qemu-user, where an
emulated call goes through the installed daemon. Run by `make test-deb` (root; minutes).
"""

import gzip
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.chroots import Chroot, chroot_tarball, host_packages, unpacked
from tests.helpers import codes_near_now, free_port, wait_for_port
from tests.test_lock import _pins

pytestmark = [pytest.mark.deb, pytest.mark.root]

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # RFC 4648's test seed, never a real one
PIN = "48291673"  # 8 digits: the length a PIN a user chooses must have
SIGNATURE_SECRET = "deb-test-signature-secret-0123456789"
NEXT_STEP = "totpd: next step: sudo totpd-seal-credentials"
# What must run in a chroot as root before the service could: seal both credentials with the
# host key (no TPM2 in a chroot), as the printed next step says.
SEAL = "totpd-seal-credentials --with-key host"  # the secret on stdin
# `totpd COMMAND` as totpd.service (and totpd-admin) run it, for a chroot without systemd:
# the credentials unsealed into a private directory, the user totpd, umask 077.
AS_SERVICE = """
umask 077
creds=$(mktemp -d /run/totpd-credentials.XXXXXX)
for name in totpd-vault-key vonage-signature-secret; do
  systemd-creds decrypt --name=$name /etc/credstore.encrypted/$name.cred $creds/$name
done
chown -R totpd:totpd $creds
export CREDENTIALS_DIRECTORY=$creds
exec setpriv --reuid=totpd --regid=totpd --init-groups -- totpd {}
"""


def package(arch: str) -> Path:
    """dist/totpd_<version>_<arch>.deb, where `make deb` leaves it."""
    deb = ROOT / "dist" / f"totpd_{VERSION}_{arch}.deb"
    assert deb.is_file(), f"{deb} is missing: make deb builds it"
    return deb


def dpkg_deb(*args: str) -> str:
    done = subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The amd64 package's control area, unpacked."""
    path = tmp_path_factory.mktemp("control")
    subprocess.run(["dpkg-deb", "--control", str(package("amd64")), str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The amd64 package's files, unpacked (as dpkg would, less the maintainer scripts)."""
    path = tmp_path_factory.mktemp("data")
    subprocess.run(["dpkg-deb", "--extract", str(package("amd64")), str(path)], check=True)
    return path


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_control_names_the_package_its_python_and_libraries(arch: str) -> None:
    fields = dpkg_deb("--field", str(package(arch)))
    assert f"Package: totpd\nVersion: {VERSION}\nArchitecture: {arch}\n" in fields
    depends = re.search(r"^Depends: (.*)$", fields, re.M)
    assert depends is not None
    wanted = ["python3 (>= 3.11)", "python3 (<< 3.12)", "systemd (>= 250)", "libsystemd0"]
    assert [d for d in wanted if d not in depends[1].split(", ")] == []


def test_the_config_is_the_only_conffile_and_ships_as_deploy_has_it(
    control: Path, data: Path
) -> None:
    assert (control / "conffiles").read_text().split() == ["/etc/totpd/totpd.toml"]
    config = data / "etc/totpd/totpd.toml"
    assert config.read_text() == (DEPLOY / "totpd.toml").read_text()
    assert config.stat().st_mode & 0o777 == 0o640


def test_units_and_sysusers_tmpfiles_ship_unchanged(data: Path) -> None:
    shipped = {
        "lib/systemd/system/totpd.service": "totpd.service",
        "lib/systemd/system/totpd.socket": "totpd.socket",
        "lib/systemd/system/totpd-metrics.socket": "totpd-metrics.socket",
        "usr/lib/sysusers.d/totpd.conf": "sysusers.d/totpd.conf",
        "usr/lib/tmpfiles.d/totpd.conf": "tmpfiles.d/totpd.conf",
        "usr/sbin/totpd-admin": "totpd-admin",
        "usr/sbin/totpd-seal-credentials": "totpd-seal-credentials",
    }
    assert [
        p for p, d in shipped.items() if (data / p).read_text() != (DEPLOY / d).read_text()
    ] == []
    assert (data / "usr/sbin/totpd-admin").stat().st_mode & 0o777 == 0o755


def test_the_units_documentation_and_the_guides_examples_ship(data: Path) -> None:
    """What the unit's Documentation= names, and the files the deployment guide installs from
    deploy/ (Caddy, drop-ins, Prometheus, Grafana), under /opt/totpd as in a checkout."""
    service = (DEPLOY / "totpd.service").read_text()
    links = re.findall(r"^Documentation=(.+)$", service, re.MULTILINE)
    pages = [u.removeprefix("file://") for v in links for u in v.split() if u.startswith("file:")]
    assert "/opt/totpd/docs/deploying.md" in pages
    examples = ["Caddyfile", "dropins/notify.conf", "dropins/private-network.conf"]
    examples += ["prometheus/totpd-rules.yml", "grafana/totpd.json"]
    wanted = [*pages, *(f"/opt/totpd/deploy/{name}" for name in examples)]
    assert [page for page in wanted if not (data / page.lstrip("/")).is_file()] == []
    shipped = data / "opt/totpd/deploy/Caddyfile"
    assert shipped.read_text() == (DEPLOY / "Caddyfile").read_text()


def test_man_pages_render_and_cover_every_command(data: Path) -> None:
    page = gzip.decompress((data / "usr/share/man/man1/totpd.1.gz").read_bytes()).decode()
    (data / "totpd.1").write_text(page)
    rendered = subprocess.run(
        ["man", "--warnings", "-l", str(data / "totpd.1")],
        capture_output=True,
        text=True,
        env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert rendered.stderr == ""
    text = rendered.stdout
    for command in ("totpd serve", "totpd account add", "totpd secrets init", "totpd unlock"):
        assert command in text
    assert "/etc/totpd/totpd.toml" in text
    for page_8 in ("totpd-admin", "totpd-seal-credentials"):
        assert (data / f"usr/share/man/man8/{page_8}.8.gz").is_file()


def test_bash_completion_parses_and_completes_subcommands(data: Path) -> None:
    completion = data / "usr/share/bash-completion/completions/totpd"
    script = f"""
source {completion}
COMP_WORDS=(totpd acc); COMP_CWORD=1; COMP_LINE="totpd acc"; COMP_POINT=${{#COMP_LINE}}
_shtab_totpd totpd acc totpd
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["account"]
    zsh = (data / "usr/share/zsh/vendor-completions/_totpd").read_text()
    assert zsh.startswith("#compdef totpd")


def test_maintainer_scripts_pass_sh_n_and_shellcheck(control: Path) -> None:
    scripts = [control / name for name in ("postinst", "prerm", "postrm")]
    for script in scripts:
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
        assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    done = subprocess.run(
        ["shellcheck", "--shell=sh", *map(str, scripts)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


def test_the_venv_holds_exactly_the_lock(data: Path) -> None:
    """Every distribution in the venv is pinned by requirements/lock.txt, at its version;
    the build tools are gone."""
    site = next((data / "opt/totpd/venv/lib").glob("python3.*/site-packages"))
    installed: dict[str, str] = {}
    for info in site.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[canonicalize_name(name)] = version
    for own in ("totpd", "pip", "setuptools"):
        installed.pop(own)
    locked = {
        name: str(versions[0]) for name, versions in _pins(ROOT / "requirements/lock.txt").items()
    }
    assert installed == locked


def test_lintian_finds_nothing_but_the_placeholder_maintainer() -> None:
    """The remaining tags are the maintainer address a distributor sets (TOTPD_DEB_MAINTAINER)."""
    host_packages("lintian")
    done = subprocess.run(
        ["lintian", "--tag-display-limit", "0", str(package("amd64"))],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    tags = {line.split()[2] for line in done.stdout.splitlines() if re.match(r"[EWI]: ", line)}
    assert tags <= {"bogus-mail-host", "bogus-mail-host-in-debian-changelog"}, done.stdout


@pytest.fixture(scope="module")
def amd64() -> Iterator[Chroot]:
    """A bare Debian 12 amd64 chroot with the package installed by apt, as the docs say."""
    with unpacked(chroot_tarball("test", "amd64"), "amd64") as chroot:
        yield install(chroot, "amd64")


def install(chroot: Chroot, arch: str) -> Chroot:
    """`apt install ./totpd_*.deb` in the chroot; the next step it prints is checked."""
    shutil.copy(package(arch), chroot.path / "root")
    started_s = time.monotonic()
    done = chroot.run(
        "apt-get update -qq && cd /root && apt install -y ./totpd_*.deb", timeout_s=1800
    )
    print(f"{arch}: apt install took {time.monotonic() - started_s:.0f} s")
    assert NEXT_STEP in done.stderr + done.stdout
    return chroot


def test_apt_installs_the_user_directories_and_an_enabled_unit(amd64: Chroot) -> None:
    listing = amd64.run(
        "id -un totpd; stat -c '%a %U %G %n' /etc/totpd /etc/totpd/totpd.toml /var/lib/totpd"
        " /etc/credstore.encrypted;"
        " readlink /etc/systemd/system/multi-user.target.wants/totpd.service"
    ).stdout.splitlines()
    assert listing == [
        "totpd",
        "750 root totpd /etc/totpd",
        "640 root totpd /etc/totpd/totpd.toml",
        "700 totpd totpd /var/lib/totpd",
        "700 root root /etc/credstore.encrypted",
        "/lib/systemd/system/totpd.service",
    ]


def test_installed_totpd_names_its_build(amd64: Chroot) -> None:
    version = amd64.run("totpd --version").stdout.strip()
    assert re.fullmatch(
        rf"totpd {re.escape(VERSION)} \(deb amd64, git [0-9a-f]{{12}}(-dirty)?\)", version
    )


def test_check_config_passes_once_the_credentials_are_sealed(amd64: Chroot) -> None:
    before = amd64.run("totpd check-config", check=False)
    assert before.returncode == 1
    assert "no Vonage signature secret" in before.stderr
    amd64.run(SEAL, stdin=SIGNATURE_SECRET)
    after = amd64.run(AS_SERVICE.format("check-config"))
    assert "OK" in after.stdout
    assert SIGNATURE_SECRET not in after.stdout + after.stderr


def test_running_totpd_leaves_the_packaged_files_as_shipped(amd64: Chroot) -> None:
    """Every file matches the package's md5sums, and running totpd as root wrote no bytecode
    into /opt (the shipped .pyc files are valid: the service could not write them anyway)."""
    amd64.run("totpd --help >/dev/null; totpd account list >/dev/null 2>&1 || true")
    assert amd64.run("dpkg --verify totpd").stdout == ""
    assert amd64.run("find /opt/totpd -newer /var/lib/dpkg/info/totpd.list").stdout == ""


def test_purge_deletes_the_config_and_keeps_the_vault_and_its_keys(amd64: Chroot) -> None:
    amd64.run(SEAL, stdin=SIGNATURE_SECRET)
    amd64.run(AS_SERVICE.format("account add demo --label Demo"), stdin=SEED)
    amd64.run("echo '# the admin was here' >> /etc/totpd/totpd.toml")
    removed = amd64.run("apt-get remove -y totpd && ls /etc/totpd /var/lib/totpd")
    assert "totpd.toml" in removed.stdout, "remove keeps the config"
    purged = amd64.run("apt-get purge -y totpd")
    kept = "/var/lib/totpd /var/backups/totpd /etc/credstore.encrypted/totpd-vault-key.cred"
    assert f"to delete them for good: rm -r {kept}" in purged.stdout
    left = amd64.run(
        "ls -d /etc/totpd /var/lib/totpd/vault.bin /etc/credstore.encrypted/*.cred 2>&1 || true"
    ).stdout
    assert "cannot access '/etc/totpd'" in left
    assert "/var/lib/totpd/vault.bin" in left
    assert "/etc/credstore.encrypted/totpd-vault-key.cred" in left
    # Installing again picks the vault up with its sealed key: the seed is still there.
    amd64.run("cd /root && apt install -y ./totpd_*.deb")
    assert "demo" in amd64.run(AS_SERVICE.format("account list")).stdout


@pytest.fixture(scope="module")
def arm64() -> Iterator[Chroot]:
    """A bare Debian 12 arm64 chroot (qemu-user) with the arm64 package installed by apt."""
    with unpacked(chroot_tarball("test", "arm64"), "arm64") as chroot:
        yield install(chroot, "arm64")


def test_arm64_package_runs_an_emulated_call(arm64: Chroot) -> None:
    assert arm64.run("uname -m").stdout.strip() == "aarch64"
    version = arm64.run("totpd --version").stdout
    assert re.match(rf"totpd {re.escape(VERSION)} \(deb arm64, git ", version)
    arm64.run(SEAL, stdin=SIGNATURE_SECRET)
    arm64.run(
        "sed -i 's|^# application_id = .*|application_id = \"totpd-deb-test\"|'"
        " /etc/totpd/totpd.toml"
    )
    arm64.run(AS_SERVICE.format("account add demo --label Demo"), stdin=SEED)
    arm64.run(AS_SERVICE.format("user add demo --accounts demo"), stdin=PIN)
    assert "OK" in arm64.run(AS_SERVICE.format("check-config")).stdout
    port = free_port()
    metrics_port = free_port()
    arm64.run(
        f'sed -i \'s|^listen = "127.0.0.1:8080"|listen = "127.0.0.1:{port}"|;'
        f' s|^listen = "127.0.0.1:9464"|listen = "127.0.0.1:{metrics_port}"|\''
        " /etc/totpd/totpd.toml"
    )
    daemon = arm64.popen(AS_SERVICE.format("serve"))
    try:
        wait_for_port(port, timeout_s=300)
        call = arm64.run(AS_SERVICE.format(f"call --press {PIN} --press ''")).stdout
    finally:
        daemon.terminate()
        served, _ = daemon.communicate(timeout=60)  # and its pipe closed
    spoken = re.search(r"Your Demo code is: (\d) (\d) (\d) (\d) (\d) (\d)\.", call)
    assert spoken is not None, f"{call}\n{served}"
    assert "".join(spoken.groups()) in codes_near_now(SEED)
    assert PIN not in call
