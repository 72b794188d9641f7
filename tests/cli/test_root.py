"""`totpd` run as root (`sudo totpd ...`) on a state directory that belongs to the service user.

The service user, or code running as it (a compromised daemon), can plant anything in its own
state directory: a symlink under any name totpd uses, pointing at a file only root may touch
or at a path that does not exist yet, swapped in while a command runs. Root's commands must
neither follow nor trust any of it: no file outside the state directory may change owner, mode
or content, be read, or be created, and every file the command leaves in the state directory
must still be the service user's.
"""

import asyncio
import os
import pwd
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.helpers import (
    GMAIL_SEED,
    SIGNATURE_SECRET,
    enrol_demo,
    open_lockout,
    write_config,
    wrong_pins,
)
from tests.servers import ForkServer
from totpd import config as config_module
from totpd.admin.password import AdminPassword
from totpd.config import Config
from totpd.roster import RosterFile
from totpd.secrets import open_store
from totpd.secrets.backup import Argon2Cost, collect, seal_backup

pytestmark = pytest.mark.root

NOBODY = pwd.getpwnam("nobody")
# Every name totpd gives a file in the state directory (temp files of atomic writes are
# random names, created with O_EXCL: a planted one cannot be guessed).
STATE_NAMES = (
    "directory.json",
    ".directory.json.lock",
    "lockout.journal",
    ".lockout.journal.lock",
    "vault.bin",
    ".vault.bin.lock",
    "vault.key",
    "admin-password",
)
ROOT_ONLY_MARK = "rootonlyuser"  # a user name only root's copy of the directory holds
ADMIN_PASSWORD = "correct horse battery staple"
PASSPHRASE = "a backup passphrase"
NEW_URI = "otpauth://totp/Example:carol?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example"
SECRET_ENV = {config_module.SIGNATURE_SECRET_ENV: SIGNATURE_SECRET}

# Every command that touches the state directory, with what it reads on standard input.
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "admin passwd": (("admin", "passwd"), f"{ADMIN_PASSWORD}\n"),
    "unlock": (("unlock",), ""),
    "status": (("status",), ""),
    "account add": (("account", "add", "gmail2", "--label", "Gmail two"), GMAIL_SEED),
    "account remove": (("account", "remove", "gmail"), ""),
    "account import": (("account", "import"), NEW_URI),
    "account list": (("account", "list"), ""),
    "account code": (("account", "code", "github"), ""),
    "user add": (("user", "add", "bob", "--accounts", "github"), "73916428\n"),
    "user passwd": (("user", "passwd", "alice"), "59381746\n"),
    "user remove": (("user", "remove", "alice"), ""),
    "user list": (("user", "list"), ""),
    "secrets backup": (("secrets", "backup", "{files}/out.backup"), f"{PASSPHRASE}\n"),
    "secrets restore": (("secrets", "restore", "{files}/in.backup", "--force"), f"{PASSPHRASE}\n"),
    "secrets set-signature-secret": (("secrets", "set-signature-secret"), "a-new-secret\n"),
    "check-config": (("check-config",), ""),
}


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    os.lchown(top, uid, gid)
    for entry in top.rglob("*"):
        os.lchown(entry, uid, gid)


@dataclass
class Installation:
    """A demo installation whose state directory belongs to nobody, under a root-owned 0755
    directory, as /var/lib/totpd under /var/lib; and root-owned files an attacker aims at."""

    base: Path
    config_path: Path
    config: Config

    @property
    def state(self) -> Path:
        """The state directory (nobody's)."""
        return self.config.paths.state_dir

    @property
    def pristine(self) -> Path:
        """A copy of the state directory as the daemon left it."""
        return self.base / "pristine"

    @property
    def files(self) -> Path:
        """Files named on the command line (backups): nobody's too."""
        return self.base / "files"

    @property
    def credstore(self) -> Path:
        """Where `secrets init` seals the vault key: root's, as /etc/credstore.encrypted."""
        return self.base / "credstore"

    @property
    def targets(self) -> Path:
        """Root-owned files and would-be files the planted links point at."""
        return self.base / "targets"

    def reset(self) -> None:
        """The state directory as the daemon left it, and fresh targets."""
        shutil.rmtree(self.state)
        shutil.copytree(self.pristine, self.state, symlinks=True)
        _chown_tree(self.state, NOBODY.pw_uid, NOBODY.pw_gid)
        (self.files / "out.backup").unlink(missing_ok=True)
        shutil.rmtree(self.credstore, ignore_errors=True)
        shutil.rmtree(self.targets, ignore_errors=True)
        self.targets.mkdir(mode=0o755)
        for name in STATE_NAMES:
            source = self.pristine / name
            content = source.read_bytes() if source.exists() else b""
            if name == "directory.json":
                content = _with_root_only_user(content)
            target = self.targets / name
            target.write_bytes(content)
            target.chmod(0o600)
            # relatime updates atime on a read only while atime <= mtime: make it so.
            mtime_ns = target.stat().st_mtime_ns
            os.utime(target, ns=(mtime_ns - 10**12, mtime_ns))

    def plant(self, name: str, target: Path) -> None:
        """Replace `name` in the state directory with nobody's symlink to `target`."""
        link = self.state / name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        os.lchown(link, NOBODY.pw_uid, NOBODY.pw_gid)

    def args(self, command: tuple[str, ...]) -> list[str]:
        """`command` with {files} filled in."""
        return [part.format(files=self.files) for part in command]

    def harm(self) -> list[str]:
        """What root's command did outside the state directory, or left root's inside it."""
        found = []
        for name in STATE_NAMES:
            target = self.targets / name
            st = target.stat()
            if (st.st_uid, st.st_gid) != (0, 0) or stat.S_IMODE(st.st_mode) != 0o600:
                found.append(f"{name}: the root-owned target changed owner or mode")
            if st.st_atime_ns >= st.st_mtime_ns:
                found.append(f"{name}: the root-owned target was read")
            if (self.targets / f"missing-{name}").exists():
                found.append(f"{name}: a file was created through the link")
        for entry in self.state.iterdir():
            if entry.lstat().st_uid != NOBODY.pw_uid:
                found.append(f"{entry.name}: left owned by root in the state directory")
        return found

    def targets_content(self) -> dict[str, bytes]:
        """The content of every target, read without touching its atime."""
        content = {}
        for name in STATE_NAMES:
            fd = os.open(self.targets / name, os.O_RDONLY | os.O_NOATIME)
            with os.fdopen(fd, "rb") as target:
                content[name] = target.read()
        return content


def _with_root_only_user(content: bytes) -> bytes:
    from totpd import roster as roster_module

    roster = roster_module.decode(content, Path("directory.json"))
    alice = roster.users["alice"]
    marked = roster.with_user(replace(alice, name=ROOT_ONLY_MARK, number=9))
    return roster_module.encode(marked)


def _build(base: Path) -> Installation:
    base.chmod(0o755)
    sealed_key = base / "credstore" / "totpd-vault-key.cred"
    config_path = write_config(base, f'[secrets]\nsealed_key_file = "{sealed_key}"\n')
    config = config_module.load(config_path)
    state = config.paths.state_dir
    state.mkdir(mode=0o700)
    enrol_demo(config, ("github", "gmail"))
    AdminPassword(state, config.pins).set(ADMIN_PASSWORD)
    asyncio.run(wrong_pins(open_lockout(state), "447700900002", "alice", 1))
    for lock in (".directory.json.lock", ".lockout.journal.lock"):  # a command makes them
        (state / lock).unlink()
    files = base / "files"
    files.mkdir(mode=0o700)
    backup, _ = collect(open_store(config), RosterFile(state).current())
    cheap = Argon2Cost(time_cost=1, memory_kib=8192, parallelism=1)
    (files / "in.backup").write_bytes(seal_backup(backup, PASSPHRASE, cheap))
    _chown_tree(files, NOBODY.pw_uid, NOBODY.pw_gid)
    shutil.copytree(state, base / "pristine", symlinks=True)
    installation = Installation(base, config_path, config)
    installation.reset()
    return installation


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    """Commands forked from one warm interpreter (a fresh process each, as root)."""
    server = ForkServer()
    yield server
    server.close()


@pytest.fixture
def installation() -> Iterator[Installation]:
    """A demo installation owned by nobody, outside pytest's 0700 temporary directory."""
    base = Path(tempfile.mkdtemp(prefix="totpd-root-"))
    try:
        yield _build(base)
    finally:
        shutil.rmtree(base)


def _attack(installation: Installation, forks: ForkServer, name: str) -> list[str]:
    """Run `name`'s command once per state name, with that name planted as a symlink to a
    root-only file, then to a path that does not exist; what went wrong, each time."""
    command, stdin = COMMANDS[name]
    findings = []
    for planted in STATE_NAMES:
        for target in (installation.targets / planted, installation.targets / f"missing-{planted}"):
            installation.reset()
            before = installation.targets_content()
            installation.plant(planted, target)
            done = forks.run(
                installation.config_path, *installation.args(command), stdin=stdin, env=SECRET_ENV
            )
            where = f"{planted} -> {target.name}"
            findings += [f"{where}: {harm}" for harm in installation.harm()]
            if installation.targets_content() != before:
                findings.append(f"{where}: a root-owned target's content changed")
            if ROOT_ONLY_MARK in done.stdout + done.stderr:
                findings.append(f"{where}: printed what only root's file holds")
            if "Traceback" in done.stderr:
                findings.append(f"{where}: a traceback")
    return findings


# admin passwd opens no file but its own, which it replaces: the race below is its attack.
@pytest.mark.parametrize("name", [name for name in COMMANDS if name != "admin passwd"])
def test_root_follows_no_link_planted_in_the_state_directory(
    installation: Installation, forks: ForkServer, name: str
) -> None:
    assert _attack(installation, forks, name) == []


# The commands that write in the state directory. (admin passwd and set-signature-secret
# chowned their one file by name before: the race and the planted links are their tests.)
WRITERS = [
    name
    for name in COMMANDS
    if name
    not in (
        "account list",
        "account code",
        "user list",
        "admin passwd",
        "secrets set-signature-secret",
    )
]


@pytest.mark.parametrize("name", WRITERS)
def test_root_leaves_the_state_directory_to_its_owner(
    installation: Installation, forks: ForkServer, name: str
) -> None:
    command, stdin = COMMANDS[name]
    done = forks.run(
        installation.config_path, *installation.args(command), stdin=stdin, env=SECRET_ENV
    )
    assert done.returncode == 0, done.stderr
    assert installation.harm() == []
    for entry in [*installation.state.iterdir(), *installation.files.iterdir()]:
        assert entry.lstat().st_uid == NOBODY.pw_uid, entry.name


def test_admin_passwd_as_root_cannot_be_raced_into_a_chown(
    installation: Installation, forks: ForkServer
) -> None:
    # While root's command runs, nobody swaps admin-password for a link to a root-only file,
    # as fast as it can: a chown by path between the rename and the chown lands on the target.
    target = installation.targets / "admin-password"
    link = installation.state / "admin-password"
    swapping = threading.Event()
    swapping.set()

    def swap() -> None:
        spare = installation.state / ".spare-link"
        while swapping.is_set():
            spare.unlink(missing_ok=True)
            spare.symlink_to(target)
            os.lchown(spare, NOBODY.pw_uid, NOBODY.pw_gid)
            spare.replace(link)

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        for _ in range(25):
            done = forks.run(
                installation.config_path, "admin", "passwd", stdin=f"{ADMIN_PASSWORD}\n"
            )
            assert done.returncode == 0, done.stderr
            st = target.stat()
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    finally:
        swapping.clear()
        swapper.join()
    done = forks.run(installation.config_path, "admin", "passwd", stdin=f"{ADMIN_PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert link.lstat().st_uid == NOBODY.pw_uid  # the daemon's to read
    assert installation.harm() == []


def test_a_root_owned_state_directory_others_can_write_is_refused(
    installation: Installation, forks: ForkServer
) -> None:
    # Root's own state directory, but group- or world-writable: anyone could plant links.
    _chown_tree(installation.state, 0, 0)
    for mode in (0o770, 0o777, 0o1777):
        installation.state.chmod(mode)
        done = forks.run(installation.config_path, "unlock", env=SECRET_ENV)
        assert done.returncode == 1
        assert "writable by other users" in done.stderr
        assert done.stderr.count("\n") == 1
        assert not (installation.state / ".lockout.journal.lock").exists()


@pytest.mark.systemd_creds
def test_secrets_init_as_root_seals_as_root_and_rekeys_as_the_owner(
    installation: Installation, forks: ForkServer
) -> None:
    init = ("secrets", "init", "--with-key=host")
    sealed_key = installation.credstore / "totpd-vault-key.cred"
    done = forks.run(installation.config_path, *init, env=SECRET_ENV)
    assert done.returncode == 0, done.stderr
    st = sealed_key.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
    assert not (installation.state / "vault.key").exists()  # the unsealed key is gone
    assert installation.harm() == []
    # Root's next command unseals the new key, as root, and reads the vault as its owner.
    code = forks.run(installation.config_path, "account", "code", "github", env=SECRET_ENV)
    assert code.returncode == 0, code.stderr
    # Planted links: init reads the old key and rewrites the vault, neither through a link.
    findings = []
    for planted in STATE_NAMES:
        for target in (installation.targets / planted, installation.targets / f"missing-{planted}"):
            installation.reset()
            installation.plant(planted, target)
            forks.run(installation.config_path, *init, env=SECRET_ENV)
            findings += [f"{planted} -> {target.name}: {harm}" for harm in installation.harm()]
    assert findings == []


@pytest.mark.systemd_creds
def test_secrets_init_as_root_seals_into_no_directory_another_user_can_write(
    installation: Installation, forks: ForkServer
) -> None:
    output = installation.state / "totpd-vault-key.cred"
    done = forks.run(
        installation.config_path, "secrets", "init", "--with-key=host", "--output", str(output)
    )
    assert done.returncode == 1
    assert "no other user can write" in done.stderr
    assert not output.exists()
    assert (installation.state / "vault.key").exists()  # nothing was re-keyed


def test_the_daemon_is_not_run_as_root_on_the_service_users_directory(
    installation: Installation, forks: ForkServer
) -> None:
    # The daemon must not keep a way back to root: it runs as the owner from the start.
    done = forks.run(installation.config_path, "serve", env=SECRET_ENV)
    assert done.returncode == 1
    assert "run the daemon as that user" in done.stderr
    assert installation.harm() == []
